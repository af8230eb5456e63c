"""The tvm device for real: TVM 0.27 in its own environment (.venv-tvm), driven through the worker process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tailorkit.core.errors import ConfigError, DeviceError, MissingDependencyError, ModelFormatError
from tailorkit.core.records import BenchmarkSettings
from tailorkit.devices.tvm import TvmDevice, default_tvm_python, kernel_op_type
from tailorkit.profiler.store import TableStore

from .conftest import run_cli

pytestmark = pytest.mark.skipif(not default_tvm_python().exists(),
                                reason=f"TVM's environment is absent ({default_tvm_python()}); `make setup` makes it")

SETTINGS = BenchmarkSettings(warmup=2, runs=10)


@pytest.fixture(scope="module")
def llvm() -> Iterator[TvmDevice]:
    device = TvmDevice("tvm-cpu", target="llvm")
    yield device
    device.close()


def test_profile_end_to_end_and_per_kernel_from_the_cli(tmp_path: Path, small_onnx: Path) -> None:
    config = tmp_path / "tailor.toml"
    config.write_text('[devices.tvm-cpu]\nkind = "tvm"\ntarget = { kind = "llvm" }\nthreads = 1\n')
    result = run_cli("profile", str(small_onnx), "--device", "tvm-cpu", "--per-op", "--json", "--runs", "10",
                     "--warmup", "2", "--config", str(config))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["device"]["kind"] == "tvm" and data["device"]["runtime"] == "tvm"
    assert data["device"]["properties"]["untuned"] == "true" and '"llvm"' in data["device"]["properties"]["target"]
    assert data["latency_ms"]["n_total"] == 10 and data["latency_ms"]["median"] > 0
    kinds = {op["op_type"] for op in data["ops"]}
    assert any("conv2d" in k for k in kinds) and any("matmul" in k or "dense" in k for k in kinds)
    assert all(op["mean"] > 0 and op["provider"] == "tvm-llvm" for op in data["ops"])


def test_outputs_match_onnx_runtime(llvm: TvmDevice, small_onnx: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    [out] = llvm.infer(small_onnx, [tmp_path / "x.npy"], tmp_path / "out")
    expected = ort.InferenceSession(str(small_onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(np.load(out), expected, atol=1e-4, rtol=1e-4)


def test_table_build_on_tvm_resumes_and_says_untuned(tmp_path: Path) -> None:
    config = tmp_path / "tailor.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "t.db"}"\n[devices.tvm-cpu]\nkind = "tvm"\n')
    args = ("table", "build", "--space", "ofa-mbv3", "--device", "tvm-cpu", "--resolution", "128", "--runs", "5",
            "--warmup", "1", "--limit", "2", "--config", str(config))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "2 measured now, 0 already" in first.stdout
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "2 measured now, 2 already" in second.stdout
    with TableStore(f"sqlite:///{tmp_path / 't.db'}") as store:
        table = store.table("ofa-mbv3-w1-r128")
    assert len(table) == 4 and table.device.properties["untuned"] == "true"
    assert all(lat.mean > 0 and lat.n_total == 5 for lat in table.entries.values())


def test_cuda_compiles_and_exports_without_a_gpu_but_does_not_run(small_onnx: Path, tmp_path: Path) -> None:
    cuda = TvmDevice("rtx", target="cuda", tuning="default-schedules")
    try:
        report = cuda.export_library(small_onnx, tmp_path / "small_cuda.so")
        assert (tmp_path / "small_cuda.so").stat().st_size == report["bytes"] > 0
        assert '"cuda"' in report["target"]
        if cuda.check() is None:
            pytest.skip("a CUDA device is present: the no-device path cannot be checked here")
        assert "no CUDA device" in (cuda.check() or "")
        with pytest.raises(DeviceError, match="no CUDA device"):
            cuda.run_model(small_onnx, SETTINGS)
    finally:
        cuda.close()


def test_llvm_library_export(llvm: TvmDevice, small_onnx: Path, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    report = llvm.export_library(small_onnx, tmp_path / "lib" / "small.so")
    assert (tmp_path / "lib" / "small.so").is_file() and report["compile_s"] > 0
    assert not [p for p in (tmp_path / "lib").iterdir() if p.name.startswith(".")]  # no temporary left


def test_an_op_tvm_cannot_import_is_named(llvm: TvmDevice, tmp_path: Path) -> None:
    node = helper.make_node("Celu", ["x"], ["y"], alpha=1.0)
    graph = helper.make_graph([node], "celu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "celu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(ModelFormatError, match="no converter for Celu"):
        llvm.run_model(path, SETTINGS)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelFormatError):
        llvm.run_model(garbage, SETTINGS)
    with pytest.raises(ModelFormatError, match="runs .onnx files"):
        llvm.run_model(tmp_path / "m.tflite", SETTINGS)


def test_bad_configuration_is_a_clear_error(tmp_path: Path, small_onnx: Path) -> None:
    bad_target = TvmDevice("x", target="nonsense")
    try:
        assert "unknown or invalid TVM target 'nonsense'" in (bad_target.check() or "")
        with pytest.raises(ConfigError, match="invalid TVM target"):
            bad_target.run_model(small_onnx, SETTINGS)
    finally:
        bad_target.close()
    vulkan = TvmDevice("x", target="vulkan")  # the pinned apache-tvm wheel has no SPIR-V code generator
    try:
        assert "cannot generate code for vulkan" in (vulkan.check() or "")
        with pytest.raises(ConfigError, match="cannot generate code for vulkan"):
            vulkan.export_library(small_onnx, tmp_path / "vk.so")
        assert not (tmp_path / "vk.so").exists()
    finally:
        vulkan.close()
    with pytest.raises(ConfigError, match="as a table"):
        TvmDevice("x", target="llvm -mcpu=skylake")
    with pytest.raises(ConfigError, match="tuning must be one of default-schedules, metaschedule"):
        TvmDevice("x", tuning="autotvm")
    with pytest.raises(ConfigError, match="trials must be an integer >= 1"):
        TvmDevice("x", tuning="metaschedule", trials=0)
    missing = TvmDevice("x", python=str(tmp_path / "no" / "python"))
    with pytest.raises(MissingDependencyError, match="make setup"):
        missing.run_model(small_onnx, SETTINGS)
    assert "make setup" in (missing.check() or "")


def test_kernel_names_become_op_types() -> None:
    assert kernel_op_type("fused_conv2d_add_relu1") == "conv2d_add_relu"
    assert kernel_op_type("conv2d12") == "conv2d"
    assert kernel_op_type("tir_clip") == "clip"
    assert kernel_op_type("matmul") == "matmul"


def test_tvm_export_writes_a_verified_library_and_its_source(tmp_path: Path) -> None:
    from tailorkit.core.config import parse_config
    from tailorkit.export.manifest import check_files
    from tailorkit.search.specialize import ExportOptions, export_arch, rerun_accuracy
    from tailorkit.search.supernet import load_digits_splits
    from tailorkit.spaces import OFAMobileNetV3Space

    config = parse_config({"devices": {"tvm-cpu": {"kind": "tvm", "target": "llvm"}}})
    space = OFAMobileNetV3Space(width=1.0)
    arch = space.smallest(128)
    data = load_digits_splits()
    out = tmp_path / "tvm-out"
    manifest = export_arch(space, arch, out, ExportOptions(fmt="tvm", device="tvm-cpu", train_epochs=1),
                           source={"kind": "arch"}, config=config, data=data)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx", "model.so"]
    assert manifest.format == "tvm" and manifest.model_file() == "model.so"
    assert manifest.compiled["input_shape"] == list(space.input_shape(arch)) and '"llvm"' in manifest.compiled["target"]
    assert manifest.compiled["tvm"].startswith("0.") and manifest.verify["passed"]
    assert manifest.accuracy["runtime"] == pytest.approx(manifest.accuracy["torch"], abs=0.01)
    assert manifest.measured["device"] == "tvm-cpu" and manifest.measured["latency_ms"]["mean"] > 0
    assert check_files(out, manifest) == []
    assert rerun_accuracy(out, manifest) == pytest.approx(manifest.accuracy["runtime"], abs=1e-6)


def test_verifying_for_a_missing_gpu_falls_back_to_llvm_and_says_so(small_onnx: Path) -> None:
    from tailorkit.search.specialize import _tvm_outputs

    cuda = TvmDevice("rtx", target="cuda")
    try:
        if cuda.check() is None:
            pytest.skip("a CUDA device is present: the fallback is not taken")
        x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
        outputs, note = _tvm_outputs(cuda, small_onnx, x)
    finally:
        cuda.close()
    assert outputs.shape == (3, 10) and note is not None and "verified on llvm" in note and "no CUDA" in note


def test_metaschedule_tunes_each_kernel_once_and_refuses_a_damaged_database(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # run from a folder holding a tvm.py (benchmarks/ has one): MetaSchedule's own worker processes must still
    # import the real TVM, not the file beside them
    here = tmp_path / "cwd"
    here.mkdir()
    (here / "tvm.py").write_text("raise ImportError('the tvm.py of the working directory was imported')\n")
    monkeypatch.chdir(here)
    node = helper.make_node("Conv", ["input", "w"], ["y"])
    relu = helper.make_node("Relu", ["y"], ["output"])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [8, 8, 1, 1],
                                 np.random.default_rng(0).standard_normal(64).astype(np.float32).tolist())
    graph = helper.make_graph([node, relu], "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                    [1, 8, 4, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 4, 4])],
                              initializer=[weights])
    model = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    settings = BenchmarkSettings(warmup=1, runs=5)
    tuned = TvmDevice("tuned", tuning="metaschedule", trials=2, tuning_db=str(tmp_path / "db"))
    try:
        assert tuned.run_model(model, settings).mean > 0
        assert tuned.last_tuning == {"kernels": 1, "tuned_now": 1}
        records = (tuned.tuning_db / "database_tuning_record.json").read_text().splitlines()
        assert len(records) == 2  # one per trial
        assert tuned.info().properties["untuned"] == "false" and tuned.info().properties["trials"] == "2"
    finally:
        tuned.close()
    again = TvmDevice("tuned", tuning="metaschedule", trials=2, tuning_db=str(tmp_path / "db"))
    try:  # a new process, the same database: nothing is tuned twice
        assert again.run_model(model, settings).mean > 0
        assert again.last_tuning == {"kernels": 1, "tuned_now": 0}
        assert (again.tuning_db / "database_tuning_record.json").read_text().splitlines() == records
    finally:
        again.close()
    (tmp_path / "db").rename(tmp_path / "damaged")
    damaged = TvmDevice("tuned", tuning="metaschedule", trials=2, tuning_db=str(tmp_path / "damaged"))
    (damaged.tuning_db / "database_workload.json").write_text('["not", "a workload"\n{{{\n')
    try:
        with pytest.raises(ConfigError, match="cannot be read.*move it away"):
            damaged.run_model(model, settings)
    finally:
        damaged.close()
