"""Measuring a model in alternation with a speed reference: the ratio holds still while the machine's speed moves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tailorkit.core import BenchmarkSettings
from tailorkit.core import timing as timing_mod
from tailorkit.core.records import DeviceInfo, Latency, PairedLatency
from tailorkit.core.timing import time_paired
from tailorkit.devices import OnnxRuntimeDevice
from tailorkit.devices.base import Device
from tailorkit.predictors import LutSumPredictor, load_predictor
from tailorkit.predictors.lut import calibrate_against_reference, calibration_archs
from tailorkit.spaces import OFAMobileNetV3Space
from tests.conftest import run_cli

FAST = BenchmarkSettings(warmup=2, runs=10, number=1)


class _SlowingMachine:
    """A fake clock: each call of a model costs its work × the machine's current slowness, which changes every
    ``period`` calls (a shared VM's speed phases)."""

    def __init__(self, slowness: list[float], period: int) -> None:
        self.now = 0
        self.calls = 0
        self.slowness = slowness
        self.period = period

    def clock(self) -> int:
        return self.now

    def model(self, work_ns: int):  # noqa: ANN201 - a closure
        def run() -> None:
            phase = self.slowness[(self.calls // self.period) % len(self.slowness)]
            self.calls += 1
            self.now += int(work_ns * phase)
        return run


def test_the_ratio_ignores_speed_phases_that_move_each_models_own_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = _SlowingMachine([1.0, 1.6, 1.0, 2.2, 1.3], period=37)
    monkeypatch.setattr(timing_mod.time, "perf_counter_ns", machine.clock)
    paired = time_paired(machine.model(3_000_000), machine.model(1_000_000), FAST, pairs=24)
    assert paired.pairs == 24
    assert paired.ratio == pytest.approx(3.0, rel=0.02)
    # the models' own latencies swing with the phases; the ratio does not
    assert paired.target.max / paired.target.min > 1.5
    assert paired.reference.max / paired.reference.min > 1.5
    # blocks last about 30 ms after two dropped samples: 10 samples of the 3 ms model, 30 of the 1 ms one
    assert paired.target.n_total == 24 * 10 and paired.reference.n_total == 24 * 30


def test_paired_records_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="as many"):
        PairedLatency.from_blocks([[1.0]], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="non-empty"):
        PairedLatency.from_blocks([[1.0], []], [[1.0], [2.0]])
    lat = Latency(mean=1.0, std=0.0, n=1)
    with pytest.raises(ValueError, match="ratio"):
        PairedLatency(lat, lat, ratio=0.0, ratio_spread=0.0, pairs=1)
    with pytest.raises(ValueError):
        time_paired(lambda: None, lambda: None, FAST, pairs=0)


class _PhasedDevice(Device):
    """A device that measures whole runs only, each at the speed of the phase it falls in."""

    def __init__(self, latency: dict[str, float], slowness: list[float]) -> None:
        super().__init__("phased")
        self.latency, self.slowness, self.runs = latency, slowness, 0

    def info(self, settings: BenchmarkSettings | None = None) -> DeviceInfo:
        raise NotImplementedError

    def check(self) -> str | None:
        return None

    def run_model(self, path, settings, input_shapes=None) -> Latency:  # noqa: ANN001
        phase = self.slowness[(self.runs // 2) % len(self.slowness)]  # a phase covers one pair of runs
        self.runs += 1
        return Latency.from_samples([self.latency[str(path)] * phase] * 5)

    def profile_ops(self, path, settings, input_shapes=None):  # noqa: ANN001, ANN201
        raise NotImplementedError


def test_devices_without_their_own_alternation_alternate_whole_runs() -> None:
    dev = _PhasedDevice({"big": 8.0, "ref": 2.0}, [1.0, 1.5, 0.8])
    paired = dev.run_paired("big", "ref", FAST, pairs=6)
    assert dev.runs == 12 and paired.pairs == 6
    assert paired.ratio == pytest.approx(4.0) and paired.ratio_spread == pytest.approx(0.0)
    assert paired.target.max == pytest.approx(12.0) and paired.target.min == pytest.approx(6.4)


def test_onnxruntime_alternates_blocks_of_two_real_models(small_onnx: Path, tmp_path: Path) -> None:
    import torch

    from tailorkit.profiler.models import prepare_model

    # the same small CNN at 4× the pixels runs several times longer
    big = prepare_model(torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(16, 16, 3, padding=1)), tmp_path,
                        input_shapes={"input": (1, 3, 64, 64)}).path
    (tmp_path / "small").mkdir()
    small = prepare_model(torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                              torch.nn.Conv2d(16, 16, 3, padding=1)), tmp_path / "small",
                          input_shapes={"input": (1, 3, 16, 16)}).path
    paired = OnnxRuntimeDevice().run_paired(big, small, FAST, pairs=6)
    assert paired.pairs == 6 and paired.ratio > 2.0
    assert paired.target.n_total >= 6 * 3 and paired.reference.n_total > paired.target.n_total
    assert paired.ratio_spread >= 0


def _cal_table(space: OFAMobileNetV3Space, *heads: int):  # noqa: ANN202
    """A synthetic table of ``space`` at 128 px, with the classifiers for ``heads`` classes as well."""
    from tailorkit.core.table import LatencyTable

    rng = np.random.default_rng(0)
    ops = [op for s in (space, *(space.with_classes(n) for n in heads)) for op in s.all_ops(128)]
    entries = {op.key: Latency(mean=float(0.02 + 1e-7 * (op.kernel or 1) ** 2 * (op.expand or 1)
                                          * int(np.prod(op.output_shape)) * rng.uniform(0.9, 1.1)), std=0.0, n=1)
               for op in ops}
    return LatencyTable("t", entries, space="ofa-mbv3")


def test_calibration_against_a_reference_keeps_it_and_a_plain_fit_drops_it(tmp_path: Path) -> None:
    space = OFAMobileNetV3Space()
    pred = LutSumPredictor(_cal_table(space), device="cpu")
    archs = calibration_archs(space, pred, 4, seed=0)
    sums = pred.predict_archs(space, space.to_array(archs))
    truth = dict(zip(map(id, archs), 2.0 * sums + 0.5, strict=True))
    reference = space.smallest(128)
    speeds = iter([1.0, 1.3, 0.9, 1.7, 1.1, 1.0, 1.4, 0.8])  # the reference's ms, measured alongside each arch
    ref_truth = 2.0 * float(pred.predict_archs(space, space.to_array([reference]))[0]) + 0.5

    def measure(arch):  # noqa: ANN001, ANN202
        return truth[id(arch)] / ref_truth, ref_truth * next(speeds)

    _, normalised = calibrate_against_reference(pred, space, archs, reference, measure, rounds=2)
    ref = pred.reference_
    assert ref is not None and ref["arch"] == space.arch_to_dict(reference) and ref["space"] == "ofa-mbv3"
    assert ref["ms"] == pytest.approx(ref_truth * 1.05)  # the median speed over the calibration
    # ratio × the reference's median ms: the line comes out at the calibration's median speed
    assert pred.coef_[0] == pytest.approx(2.0 * 1.05, rel=1e-6)
    assert normalised == pytest.approx(np.array([truth[id(a)] for a in archs]) * 1.05)
    loaded = load_predictor(pred.save(tmp_path / "cal.tlp"))
    assert loaded.reference_ == ref
    loaded.fit(space.op_counts(space.to_array(archs), loaded.keys_), normalised)
    assert loaded.reference_ is None  # a plain fit's numbers are not tied to that reference's speed


def test_cli_closed_loop_reads_the_measurement_at_the_calibrations_speed(tmp_path: Path) -> None:
    space = OFAMobileNetV3Space()
    lut = LutSumPredictor(_cal_table(space), device="cpu").save(tmp_path / "lut.tlp")
    cal = tmp_path / "cal.tlp"
    proc = run_cli("predictor", "calibrate", str(lut), "--device", "cpu", "--n", "2", "-o", str(cal))
    assert proc.returncode == 0, proc.stderr
    assert "speed reference: the smallest subnet" in proc.stdout
    ref = load_predictor(cal).reference_
    assert ref is not None and ref["arch"] == space.arch_to_dict(space.smallest(128))
    out = tmp_path / "res.json"
    proc = run_cli("search", "--space", "ofa-mbv3", "--predictor", str(cal), "--latency-ratio", "0.5", "--budget",
                   "300", "--device", "cpu", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "at the calibration's machine speed" in proc.stdout
    data = json.loads(out.read_text())
    assert data["predictor"]["reference"] == ref
    m = data["measured"]["speed_reference"]
    assert m["calibration_ms"] == ref["ms"] and m["latency_ms"] == pytest.approx(m["ratio"] * ref["ms"])
    assert m["slowdown"] == pytest.approx(m["now_ms"] / ref["ms"])
    assert m["error_pct"] == pytest.approx(100 * (data["best"]["latency_ms"] - m["latency_ms"]) / m["latency_ms"])
    # a plain calibration keeps no reference, and the closed loop is the plain measurement
    plain = tmp_path / "plain.tlp"
    proc = run_cli("predictor", "calibrate", str(lut), "--device", "cpu", "--n", "2", "--no-reference",
                   "-o", str(plain))
    assert proc.returncode == 0, proc.stderr
    assert load_predictor(plain).reference_ is None and "speed reference" not in proc.stdout


def test_calibration_measures_the_deployed_head_and_other_heads_get_a_note(tmp_path: Path) -> None:
    """A 1000-class classifier costs ~0.3 ms in a whole w1.2 model but 0.08 ms timed alone (its weights stay in
    cache): a correction calibrated on one head carries that into predictions for another, so they say so."""
    from tailorkit.search.api import head_mismatch_note, plan_search
    from tailorkit.search.specialize import predict_arch

    space = OFAMobileNetV3Space()
    lut = LutSumPredictor(_cal_table(space, 10), device="cpu").save(tmp_path / "lut.tlp")
    cal = tmp_path / "cal10.tlp"
    proc = run_cli("predictor", "calibrate", str(lut), "--device", "cpu", "--n", "2", "--classes", "10", "-o", str(cal))
    assert proc.returncode == 0, proc.stderr
    ref = load_predictor(cal).reference_
    assert ref is not None and ref["num_classes"] == 10
    assert space.with_classes(10).build(space.arch_from_dict(ref["arch"]))[-1][-1].out_features == 10
    arch = space.smallest(128)
    assert "note" not in predict_arch(space, arch, cal)  # exports carry the digits head: the calibrated one
    assert not [n for n in plan_search("ofa-mbv3", target_ratio=0.5, latency=cal, budget=10, classes=10).notes
                if "calibrated on" in n]
    notes = plan_search("ofa-mbv3", target_ratio=0.5, latency=cal, budget=10).notes  # a 1000-class search
    assert [n for n in notes if "calibrated on 10-class models and this one has 1000 classes" in n]
    thousand = load_predictor(cal)
    thousand.reference_ = {**ref, "num_classes": 1000}
    note = predict_arch(space, arch, thousand.save(tmp_path / "cal1000.tlp"))["note"]
    assert "calibrate --classes 10" in note
    assert head_mismatch_note({"reference": {"num_classes": 10}}, space.with_classes(10)) is None
    assert head_mismatch_note(None, space) is None
    lacking = LutSumPredictor(_cal_table(space), device="cpu").save(tmp_path / "no10.tlp")
    bad = run_cli("predictor", "calibrate", str(lacking), "--device", "cpu", "--n", "2", "--classes", "10",
                  "-o", str(tmp_path / "x.tlp"))
    assert bad.returncode != 0 and "--classes 10" in bad.stderr and not (tmp_path / "x.tlp").exists()


def test_calibration_and_closed_loops_measure_modules_as_tailor_export_writes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exported ONNX file has dynamic height and width (verified at r/8, deployed at r), which ONNX Runtime
    runs a few % slower than a static file: what is compared with exported files is measured in that form."""
    import onnx

    from tailorkit.profiler import api
    from tailorkit.profiler.models import prepare_model

    space = OFAMobileNetV3Space()
    arch = space.smallest(128)

    def dims(path: Path) -> list[str | int]:
        shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in shape]

    shapes = {"input": space.input_shape(arch)}
    static = prepare_model(space.build(arch), tmp_path / "s", input_shapes=shapes)
    exported = prepare_model(space.build(arch), tmp_path / "e", input_shapes=shapes, as_exported=True)
    assert dims(static.path) == [1, 3, 128, 128] and dims(exported.path) == [1, 3, "height", "width"]
    assert exported.input_shapes == {"input": (1, 3, 128, 128)}  # measured at the deployment resolution
    seen: list[list[str | int]] = []

    class Recording(OnnxRuntimeDevice):
        def run_paired(self, target, reference, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            seen.extend([dims(target), dims(reference)])
            return super().run_paired(target, reference, *args, **kwargs)

    monkeypatch.setattr(api, "open_device", lambda device, config: Recording())
    api.profile_archs_paired(space, arch, space.smallest(128), "cpu",
                             settings=BenchmarkSettings(warmup=1, runs=3, threads=1))
    assert seen == [[1, 3, "height", "width"], [1, 3, 128, 128]]  # the arch as exported, the yardstick static


def test_cli_profile_against_another_model() -> None:
    proc = run_cli("profile", "ofa-mbv3-max", "--against", "ofa-mbv3-min", "--resolution", "128", "--pairs", "4",
                   "--warmup", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "ofa-mbv3-max@128" and data["reference"] == "ofa-mbv3-min@128"
    assert data["pairs"] == 4 and data["ratio"] > 1.5  # the largest subnet against the smallest
    assert data["latency_ms"]["median"] > data["reference_latency_ms"]["median"]
    for args, message in ((("--against", "ofa-mbv3-min", "--per-op"), "drop --per-op"),
                          (("--pairs", "3"), "--pairs needs --against")):
        bad = run_cli("profile", "ofa-mbv3-max", *args)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr
