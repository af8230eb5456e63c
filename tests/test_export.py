"""`tailor export`: the searched subnet with trained weights as ONNX / TFLite, verified in its runtime on the
digits test split, measured, with a manifest — written whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tailorkit.core.documents import sha256_file
from tailorkit.core.errors import ConfigError, ModelFormatError, TailorError
from tailorkit.export.manifest import check_files, read_manifest
from tailorkit.export.verify import compare_outputs, run_batch
from tailorkit.profiler.api import models_table_name, profile
from tailorkit.profiler.store import TableStore
from tailorkit.search.api import SearchResult
from tailorkit.search.specialize import ExportError, ExportOptions, export_arch, export_search_result
from tailorkit.search.supernet import SupernetConfig, at_resolution, load_digits_splits, train_supernet
from tailorkit.spaces import MnasNetSpace, OFAMobileNetV3Space, SPOSReducedSpace
from tests.conftest import run_cli

DATA = load_digits_splits()
OFA = OFAMobileNetV3Space(width=1.0)
# a small, fast arch at 128 px (16 px digits): kernels and expands mixed so every elastic part is exercised
ARCH = OFA.arch_from_dict({"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [2, 2, 3, 2, 2], "r": 128})


@pytest.fixture(scope="module")
def spos_supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ckpt = tmp_path_factory.mktemp("sn") / "spos"
    train_supernet(SupernetConfig(space="spos-reduced", epochs=1, steps_per_epoch=15, subnets_per_step=1, seed=0), ckpt,
                   data=DATA)
    return ckpt


def _export(out: Path, ckpt: Path | None, space=OFA, arch=ARCH, predicted=None, **options) -> object:  # noqa: ANN001
    return export_arch(space, arch, out, ExportOptions(supernet=ckpt, **options), source={"kind": "arch"},
                       predicted=predicted or {"latency_ms": 2.0, "source": "test"}, data=DATA)


def test_onnx_export_runs_like_torch_and_writes_a_complete_manifest(ofa_supernet: Path, tmp_path: Path) -> None:
    manifest = _export(tmp_path / "out", ofa_supernet)
    folder = tmp_path / "out"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.onnx"]
    data = json.loads((folder / "manifest.json").read_text())
    assert data["schema"] == "tailorkit.export-manifest" and data["version"] == 1
    assert data["format"] == "onnx" and data["quantize"] is None
    assert data["space"] == {"name": "ofa-mbv3", "width": 1.0} and data["arch"] == OFA.arch_to_dict(ARCH)
    assert data["input"]["shape"] == [1, 3, 128, 128] and data["input"]["verified_shape"] == [1, 3, 16, 16]
    assert data["weights"]["kind"] == "supernet" and data["weights"]["bn_recalibrated"] is True
    assert data["verify"]["passed"] and data["verify"]["top1_agreement"] >= 0.99
    assert data["verify"]["max_abs_diff"] <= data["verify"]["max_abs_tolerance"]
    assert data["accuracy"]["runtime"] == data["accuracy"]["torch"] and data["accuracy"]["n"] == 270
    assert data["simplify"]["tool"] == "onnxsim" and data["simplify"]["nodes_after"] <= data["simplify"]["nodes_before"]
    assert {"tailorkit", "torch", "onnx", "onnxruntime"} <= set(data["versions"])
    assert data["predicted"]["latency_ms"] == 2.0 and data["measured"] is None
    assert check_files(folder, manifest) == []
    # the same file runs at the deployment shape (what devices measure) and at the digits shape (verified)
    for shape in ((1, 3, 128, 128), (1, 3, 16, 16)):
        assert run_batch(folder / "model.onnx", "onnx", np.zeros(shape, np.float32)).shape == (1, 10)


def test_altered_file_is_detected_and_verify_command_fails(ofa_supernet: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    _export(folder, ofa_supernet, simplifier=None)
    ok = run_cli("verify", str(folder))
    assert ok.returncode == 0, ok.stderr
    assert "as recorded" in ok.stdout
    model = folder / "model.onnx"
    blob = bytearray(model.read_bytes())
    blob[-1] ^= 0xFF
    model.write_bytes(bytes(blob))
    problems = check_files(folder, read_manifest(folder))
    assert problems == ["model.onnx: sha256 differs from the manifest (the file was altered)"]
    bad = run_cli("verify", str(folder))
    assert bad.returncode == 1 and "error: " in bad.stderr and "altered" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_tflite_export_agrees_with_torch(ofa_supernet: Path, tmp_path: Path, small_onnx: Path) -> None:
    pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'tailorkit[tflite]')")
    # the prediction came from a table of the ONNX Runtime device: no error against a LiteRT measurement
    manifest = _export(tmp_path / "tfl", ofa_supernet, fmt="tflite", device="litert",
                       predicted={"latency_ms": 2.0, "source": "lut", "device": "cpu"})
    assert manifest.files[0]["name"] == "model.tflite"
    assert manifest.verify["passed"] and manifest.verify["top1_agreement"] >= 0.99
    assert manifest.measured["device"] == "litert" and manifest.measured["latency_ms"]["mean"] > 0
    assert manifest.measured["error_pct"] is None and "for device 'cpu'" in manifest.measured["note"]
    assert "litert-torch" in manifest.versions and "ai-edge-litert" in manifest.versions
    # the litert device runs .tflite files, and converts .onnx ones (export/onnx_import.py); the ONNX Runtime
    # device cannot take a .tflite
    path = tmp_path / "tfl" / "model.tflite"
    prof = profile(path, "litert")
    assert prof.device.kind == "litert" and prof.device.runtime == "ai-edge-litert" and prof.latency.mean > 0
    assert prof.input_shapes == {"input": (1, 3, 128, 128)}
    converted = profile(small_onnx, "litert")
    assert converted.model == "small.onnx (as tflite)" and converted.latency.mean > 0
    with pytest.raises(ConfigError, match="runs onnx models"):
        profile(path, "cpu")
    from tailorkit.devices import LiteRtDevice

    plain = profile(path, LiteRtDevice("plain", delegate="none"))
    assert plain.device.properties["delegate"] == "none" and plain.latency.mean > 0
    assert plain.device.fingerprint != prof.device.fingerprint  # tables of the two paths never mix
    with pytest.raises(ConfigError, match="delegate must be one of xnnpack, none"):
        LiteRtDevice("x", delegate="gpu")
    (tmp_path / "bad.tflite").write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="not a TFLite model"):
        profile(tmp_path / "bad.tflite", "litert")


def test_int8_onnx_is_smaller_and_still_agrees(ofa_supernet: Path, tmp_path: Path) -> None:
    float_ = _export(tmp_path / "f", ofa_supernet)
    # the fixture's supernet is barely trained: near-uniform logits flip under any rounding, so the subnet is
    # fine-tuned first (which also exercises --train-epochs with --supernet)
    int8 = _export(tmp_path / "q", ofa_supernet, quantize="int8", train_epochs=3)
    assert int8.weights["finetune_epochs"] == 3 and int8.accuracy["torch"] > 0.5
    assert int8.files[0]["name"] == "model-int8.onnx"
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["manifest.json", "model-int8.onnx"]
    assert int8.files[0]["bytes"] < 0.5 * float_.files[0]["bytes"]
    assert int8.verify["passed"] and int8.verify["top1_agreement"] >= 0.95
    assert int8.verify["max_abs_tolerance"] is None  # int8 logits differ by design; agreement is the check
    assert int8.predicted["latency_ms"] == 2.0


@pytest.mark.slow
def test_int8_tflite_calibrates_at_the_digits_shape(ofa_supernet: Path, tmp_path: Path) -> None:
    pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'tailorkit[tflite]')")
    manifest = _export(tmp_path / "q", ofa_supernet, fmt="tflite", quantize="int8", train_epochs=3)
    assert manifest.verify["passed"] and manifest.verify["top1_agreement"] >= 0.95
    # int8 in and out: the runner quantizes the float input with the file's own scale and dequantizes outputs
    from tailorkit.export.tflite import _interpreter

    detail = _interpreter(tmp_path / "q" / "model-int8.tflite", 1).get_input_details()[0]
    assert detail["dtype"] == np.int8 and detail["quantization"][0] > 0
    got = run_batch(tmp_path / "q" / "model-int8.tflite", "tflite",
                    at_resolution(DATA.test_x[:4], 128).contiguous().numpy())
    assert got.dtype == np.float32 and got.shape == (4, 10) and np.abs(got).max() > 0


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("tflite", marks=pytest.mark.slow)])
def test_spos_supernet_export_agrees(spos_supernet: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "tflite":
        pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'tailorkit[tflite]')")
    space = SPOSReducedSpace()  # the same units as the full body, a quarter of the graph to convert
    arch = space.sample(np.random.default_rng(3))
    manifest = _export(tmp_path / "spos", spos_supernet, space=space, arch=arch, fmt=fmt)
    assert manifest.space["name"] == "spos-reduced" and manifest.input["shape"] == [1, 3, 224, 224]
    assert manifest.verify["passed"] and manifest.verify["top1_agreement"] >= 0.99
    if fmt == "tflite":
        # the channel shuffle's reshapes fix the converted graph's size: compared at the deployment shape
        assert manifest.input["verified_shape"] == [1, 3, 224, 224] and "fixes its spatial size" in \
            manifest.accuracy["note"]
    else:
        assert manifest.input["verified_shape"] == [1, 3, 28, 28]


def test_space_without_supernet_trains_the_subnet_from_scratch(tmp_path: Path) -> None:
    space = MnasNetSpace()
    arch = space.sample(np.random.default_rng(0))
    manifest = _export(tmp_path / "mnas", None, space=space, arch=arch, train_epochs=2)
    assert manifest.weights == {"kind": "trained", "epochs": 2, "seed": 0}
    assert manifest.verify["passed"]
    assert manifest.accuracy["torch"] > 0.3  # two epochs on digits, far above the 0.1 of chance


def test_measured_latency_is_stored_for_the_next_calibration(ofa_supernet: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    manifest = _export(tmp_path / "m", ofa_supernet, device="cpu", refit=True, store_url=url)
    assert manifest.refit["table"] == models_table_name("ofa-mbv3", 1.0)
    mean = manifest.measured["latency_ms"]["mean"]
    assert manifest.measured["error_pct"] == pytest.approx(100 * (2.0 - mean) / mean)
    with TableStore(url) as store:
        table = store.table(manifest.refit["table"], device="cpu")
    assert list(table.entries) == [manifest.refit["key"]]
    assert OFA.arch_from_dict(json.loads(manifest.refit["key"])) == ARCH
    assert table.entries[manifest.refit["key"]].mean == pytest.approx(manifest.measured["latency_ms"]["mean"])


def test_export_measures_against_the_predictors_speed_reference(ofa_supernet: Path, tmp_path: Path) -> None:
    reference = {"space": "ofa-mbv3", "width": 1.0, "arch": OFA.arch_to_dict(OFA.smallest(128)), "ms": 1.5,
                 "spread": 0.1}
    predicted = {"latency_ms": 2.0, "source": "test", "device": "cpu", "reference": reference}
    manifest = _export(tmp_path / "out", ofa_supernet, predicted=predicted, device="cpu", verify=False,
                       simplifier=None)
    m = manifest.measured
    ref = m["speed_reference"]
    assert manifest.predicted["reference"] == reference
    assert ref["arch"] == reference["arch"] and ref["calibration_ms"] == 1.5 and ref["pairs"] >= 1
    assert ref["ratio"] > 1  # the exported subnet is larger than the smallest one
    assert ref["latency_ms"] == pytest.approx(ref["ratio"] * 1.5)
    assert ref["error_pct"] == pytest.approx(100 * (2.0 - ref["latency_ms"]) / ref["latency_ms"])
    assert m["error_pct"] == pytest.approx(100 * (2.0 - m["latency_ms"]["mean"]) / m["latency_ms"]["mean"])
    # a prediction for another device is not compared, so the file is measured on its own
    other = _export(tmp_path / "other", ofa_supernet, predicted={**predicted, "device": "pixel"}, device="cpu",
                    verify=False, simplifier=None)
    assert "speed_reference" not in other.measured and other.measured["error_pct"] is None
    assert "device 'pixel'" in other.measured["note"]


def _head_table(with_digits_head: bool):  # noqa: ANN202
    from tailorkit.core.records import Latency
    from tailorkit.core.table import LatencyTable

    entries = {op.key: Latency(mean=0.1, std=0.0, n=1) for op in OFA.all_ops(128)}
    entries[next(k for k in entries if k.startswith("Logits-"))] = Latency(mean=1.0, std=0.0, n=1)
    if with_digits_head:
        [head] = [op for op in OFA.with_classes(10).all_ops(128) if op.key not in entries]
        entries[head.key] = Latency(mean=0.01, std=0.0, n=1)
    return LatencyTable("t", entries, space="ofa-mbv3")


def test_the_exported_model_is_predicted_with_its_own_classifier(tmp_path: Path) -> None:
    from tailorkit.predictors.lut import LutSumPredictor
    from tailorkit.search.specialize import predict_arch, predicted_for

    with_head = LutSumPredictor(_head_table(True), device="cpu").save(tmp_path / "head.tlp")
    without = LutSumPredictor(_head_table(False), device="cpu").save(tmp_path / "plain.tlp")
    n_ops = len(OFA.ops(ARCH))
    body = 0.1 * (n_ops - 1)
    exported = predict_arch(OFA, ARCH, with_head)
    assert exported["latency_ms"] == pytest.approx(body + 0.01) and "note" not in exported
    fallback = predict_arch(OFA, ARCH, without)
    assert fallback["latency_ms"] == pytest.approx(body + 1.0) and "1000-class classifier" in fallback["note"]
    # a search result's winner is predicted again for the export, when its predictor file is still the same
    result = SearchResult(space={"name": "ofa-mbv3", "width": 1.0}, strategy={"name": "random"},
                          reward={"name": "mnasnet-soft", "target_ms": 3.0}, budget=10, seed=0, evaluations=10,
                          resumed_from=0, seconds=0.1, latency_source="lut predictor (cpu)", accuracy_source=None,
                          best={"arch": OFA.arch_to_dict(ARCH), "reward": 1.0, "latency_ms": body + 1.0,
                                "accuracy": None}, pareto=[], curve=[],
                          predictor={"path": str(with_head), "sha256": sha256_file(with_head), "kind": "lut",
                                     "device": "cpu"})
    predicted = predicted_for(result, ExportOptions())
    assert predicted["latency_ms"] == pytest.approx(body + 0.01)
    assert predicted["search_latency_ms"] == pytest.approx(body + 1.0)
    with_head.write_bytes(without.read_bytes())  # the file changed since the search
    predicted = predicted_for(result, ExportOptions())
    assert predicted["latency_ms"] == pytest.approx(body + 1.0) and "gone or changed" in predicted["note"]


def test_search_result_is_exported_with_its_prediction(ofa_supernet: Path, tmp_path: Path) -> None:
    result = SearchResult(space={"name": "ofa-mbv3", "width": 1.0}, strategy={"name": "random"},
                          reward={"name": "mnasnet-soft", "target_ms": 3.0}, budget=10, seed=0, evaluations=10,
                          resumed_from=0, seconds=0.1, latency_source="lut predictor (cpu)", accuracy_source=None,
                          best={"arch": OFA.arch_to_dict(ARCH), "reward": 1.0, "latency_ms": 2.5, "accuracy": None},
                          pareto=[], curve=[], predictor={"kind": "lut", "device": "cpu"})
    path = result.save(tmp_path / "result.json")
    manifest = export_search_result(path, tmp_path / "out", ExportOptions(supernet=ofa_supernet, simplifier=None))
    assert manifest.source["kind"] == "search-result" and len(manifest.source["sha256"]) == 64
    assert manifest.predicted == {"latency_ms": 2.5, "source": "lut predictor (cpu)", "device": "cpu"}
    assert manifest.arch == OFA.arch_to_dict(ARCH)


def test_failed_verification_writes_nothing(ofa_supernet: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import tailorkit.search.specialize as specialize

    def wrong(path: Path, fmt: str, inputs: np.ndarray) -> np.ndarray:
        return np.tile(np.eye(10, dtype=np.float32)[3], (len(inputs), 1))  # always "3"

    monkeypatch.setattr(specialize, "run_batch", wrong)
    with pytest.raises(ExportError, match="disagrees with torch.*nothing was written"):
        _export(tmp_path / "out", ofa_supernet, simplifier=None)
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder left behind


def test_existing_output_is_kept_unless_forced(ofa_supernet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        _export(out, ofa_supernet, simplifier=None)
    assert (out / "keep.txt").read_text() == "mine"
    _export(out, ofa_supernet, simplifier=None, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize(("options", "message"), [
    ({"fmt": "coreml"}, "unknown export format 'coreml'"),
    ({"fmt": "tvm"}, "tvm device"),
    ({"fmt": "tvm", "device": "tvm-cpu", "quantize": "int8"}, "TVM compiles the float32 model"),
    ({"quantize": "fp16"}, "--quantize must be one of int8"),
    ({"simplifier": "magic"}, "--simplify must be one of"),
    ({"supernet": None}, "needs trained weights"),
    ({"refit": True}, "--refit stores the latency measured on --device"),
    ({"min_agreement": 1.5}, "--min-agreement must be between 0 and 1"),
    ({"refit": True, "device": "cpu", "quantize": "int8"}, "int8 model's latency would skew"),
])
def test_bad_options_are_refused_before_any_work(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExportOptions(**{"supernet": "ckpt", **options}).require_weights()


def test_bad_inputs_give_clear_errors(ofa_supernet: Path, tmp_path: Path) -> None:
    from tailorkit.spaces import NB201Space

    nb201 = NB201Space()
    with pytest.raises(ConfigError, match="no modules to export"):
        _export(tmp_path / "a", ofa_supernet, space=nb201, arch=nb201.sample(np.random.default_rng(0)))
    with pytest.raises(ConfigError, match="supernet .* is ofa-mbv3 width 1.0; the arch is ofa-mbv3 width 1.2"):
        wide = OFAMobileNetV3Space(width=1.2)
        _export(tmp_path / "b", ofa_supernet, space=wide, arch=wide.smallest(128))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create|not a directory"):
        _export(blocker / "sub" / "out", ofa_supernet)
    with pytest.raises(TailorError, match="unknown device 'nope'"):
        _export(tmp_path / "c", ofa_supernet, device="nope")
    with pytest.raises(ConfigError, match="device 'litert' runs tflite models, not onnx"):
        _export(tmp_path / "d", ofa_supernet, device="litert")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_refuses_bad_input_without_traceback(ofa_supernet: Path, tmp_path: Path) -> None:
    other = tmp_path / "nb201.json"
    nb = SearchResult(space={"name": "nb201"}, strategy={"name": "random"}, reward={"name": "mnasnet-soft"},
                      budget=1, seed=0, evaluations=1, resumed_from=0, seconds=0.1, latency_source="help",
                      accuracy_source=None, best={"arch": {"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
                                                  "reward": 1.0, "latency_ms": 1.0, "accuracy": None},
                      pareto=[], curve=[])
    nb.save(other)
    cases = [
        (["export", str(other), "--supernet", str(ofa_supernet), "-o", str(tmp_path / "o1")], "no modules to export"),
        (["export", "--space", "ofa-mbv3", "--arch", '{"ks": [9], "e": [3], "d": [2], "r": 128}', "--supernet",
          str(ofa_supernet), "-o", str(tmp_path / "o2")], "error: OFA arch ks must be 20 values"),
        (["export", "--space", "ofa-mbv3", "--arch", json.dumps(OFA.arch_to_dict(ARCH)), "--format", "onnx2",
          "--supernet", str(ofa_supernet), "-o", str(tmp_path / "o3")], "unknown export format"),
        (["export", str(tmp_path / "missing.json"), "--supernet", str(ofa_supernet), "-o", str(tmp_path / "o4")],
         "does not exist"),
        (["verify", str(tmp_path / "nowhere")], "does not exist"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb201.json"]


def test_cli_export_measures_and_calibration_learns_from_stored_runs(ofa_supernet: Path, tmp_path: Path) -> None:
    from tailorkit.core.records import Latency
    from tailorkit.core.table import LatencyTable
    from tailorkit.predictors.lut import LutSumPredictor

    db = f"sqlite:///{tmp_path / 'store.db'}"
    other = OFA.arch_from_dict({**OFA.arch_to_dict(ARCH), "d": [3, 3, 3, 3, 3]})
    _export(tmp_path / "e0", ofa_supernet, device="cpu", refit=True, store_url=db, verify=False)
    for i, arch in [(1, other)]:
        proc = run_cli("export", "--space", "ofa-mbv3", "--arch", json.dumps(OFA.arch_to_dict(arch)), "--supernet",
                       str(ofa_supernet), "--device", "cpu", "--refit", "--db", db, "--no-verify",
                       "-o", str(tmp_path / f"e{i}"))
        assert proc.returncode == 0, proc.stderr
        assert "measured on cpu" in proc.stdout and "not verified" in proc.stdout
    # a lookup-table predictor over every op at 128 px, corrected on the two stored runs alone
    table = LatencyTable("t", {op.key: Latency(mean=0.05, std=0.0, n=1) for op in OFA.all_ops(128)},
                         space="ofa-mbv3")
    pred_path = LutSumPredictor(table, device="cpu").save(tmp_path / "lut.tlp")
    proc = run_cli("predictor", "calibrate", str(pred_path), "--device", "cpu", "--n", "0", "--stored", "--db", db,
                   "-o", str(tmp_path / "cal.tlp"))
    assert proc.returncode == 0, proc.stderr
    assert "2 whole model(s) from the store, 0 measured now" in proc.stdout
    # the table has no digits head: the export predicts the space's own classifier and says so
    proc = run_cli("export", "--space", "ofa-mbv3", "--arch", json.dumps(OFA.arch_to_dict(other)), "--supernet",
                   str(ofa_supernet), "--predictor", str(tmp_path / "cal.tlp"), "--no-verify",
                   "-o", str(tmp_path / "e2"))
    assert proc.returncode == 0, proc.stderr
    assert "note: predicted with the table's 1000-class classifier" in proc.stderr


def test_compare_outputs() -> None:
    ref = np.array([[1.0, 2.0], [3.0, 0.0]])
    agreement = compare_outputs(ref, ref + np.array([[0.0, 0.5], [-4.0, 0.0]]))
    assert agreement.top1_agreement == 0.5 and agreement.max_abs_diff == 4.0 and agreement.reference_scale == 3.0
    with pytest.raises(ModelFormatError, match="shape"):
        compare_outputs(ref, ref[:1])
    with pytest.raises(ModelFormatError, match="NaN"):
        compare_outputs(ref, ref * np.nan)


def test_output_folder_permissions_follow_the_umask(ofa_supernet: Path, tmp_path: Path) -> None:
    _export(tmp_path / "out", ofa_supernet, simplifier=None, verify=False)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask


def test_output_written_during_the_export_is_never_replaced(ofa_supernet: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import tailorkit.search.specialize as specialize

    out = tmp_path / "out"
    real = specialize._write_model

    def meanwhile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out.mkdir()
        (out / "theirs.txt").write_text("written by someone else during the export")
        return real(*args, **kwargs)

    monkeypatch.setattr(specialize, "_write_model", meanwhile)
    with pytest.raises(ConfigError, match="changed during the export"):
        _export(out, ofa_supernet, simplifier=None, verify=False)
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_working_folder_and_malformed_manifests_are_refused(ofa_supernet: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tailorkit.export.manifest import MANIFEST

    monkeypatch.chdir(tmp_path)
    for target in (".", str(tmp_path.parent)):
        with pytest.raises(ConfigError, match="working folder or above it"):
            _export(Path(target), ofa_supernet, force=True)
    folder = tmp_path / "m"
    folder.mkdir()
    for bad in ({"files": ["model.onnx"]}, {"files": []}, {"input": {"shape": "1x3"}}):
        good = {"schema": "tailorkit.export-manifest", "version": 1, "format": "onnx", "space": {}, "arch": {},
                "input": {"shape": [1, 3, 8, 8]}, "source": {}, "weights": {}, "accuracy": {},
                "files": [{"name": "model.onnx", "sha256": "0" * 64, "bytes": 1}]}
        (folder / MANIFEST).write_text(json.dumps({**good, **bad}))
        with pytest.raises(ConfigError, match="export manifest"):
            read_manifest(folder)
    proc = run_cli("verify", str(folder))
    assert proc.returncode == 1 and "error: " in proc.stderr and "Traceback" not in proc.stderr
