from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tailorkit.core import BenchmarkSettings, ConfigError, DeviceError, ModelFormatError
from tailorkit.devices import OnnxRuntimeDevice
from tailorkit.devices.onnxruntime import ops_from_trace
from tailorkit.export import resolve_input_shapes
from tailorkit.profiler import profile

FAST = BenchmarkSettings(warmup=2, runs=10, number=1)


def test_run_model_gives_consistent_statistics(small_onnx: Path) -> None:
    lat = OnnxRuntimeDevice().run_model(small_onnx, FAST)
    assert lat.n_total == 10 and 1 <= lat.n <= 10 and len(lat.samples) == 10
    assert 0 < lat.min <= lat.median <= lat.p90 <= lat.max
    assert lat.min <= lat.mean <= lat.max


def test_auto_number_batches_fast_models(small_onnx: Path) -> None:
    lat = OnnxRuntimeDevice().run_model(small_onnx, BenchmarkSettings(warmup=4, runs=5, min_sample_ms=5.0))
    assert lat.number > 1  # a tiny CNN takes far less than 5 ms per inference


def test_target_cv_adds_batches_until_max_runs(small_onnx: Path) -> None:
    # an unreachable CV target forces every batch up to max_runs
    lat = OnnxRuntimeDevice().run_model(small_onnx, BenchmarkSettings(warmup=1, runs=5, number=1,
                                                                      target_cv=1e-9, max_runs=15))
    assert lat.n_total == 15


def test_per_op_rows_cover_every_graph_node(small_onnx: Path) -> None:
    # Constant nodes become initializers when ORT loads the graph; they never run as kernels
    nodes = [n for n in onnx.load(str(small_onnx)).graph.node if n.op_type != "Constant"]
    ops = OnnxRuntimeDevice(optimization="disable").profile_ops(small_onnx, FAST)
    # without graph optimisation ORT runs the graph as written: one row per node
    assert sorted(o.name for o in ops) == sorted(n.name for n in nodes)
    assert {o.op_type for o in ops} == {n.op_type for n in nodes}
    for op in ops:
        assert op.latency.mean > 0 and op.latency.n_total == FAST.runs
        assert op.provider == "CPUExecutionProvider"


def test_per_op_with_fusion_shows_what_runs(small_onnx: Path) -> None:
    fused = OnnxRuntimeDevice(optimization="all").profile_ops(small_onnx, FAST)
    assert fused and all(o.latency.mean > 0 for o in fused)
    assert "Relu" not in {o.op_type for o in fused}  # Conv+Relu are fused at the full level


def test_dynamic_dims_need_a_shape(dynamic_onnx: Path) -> None:
    with pytest.raises(ModelFormatError, match="dynamic dims.*--shape input:Nx3x16x16"):
        resolve_input_shapes(dynamic_onnx)
    assert resolve_input_shapes(dynamic_onnx, {"": (2, 3, 16, 16)}) == {"input": (2, 3, 16, 16)}
    with pytest.raises(ModelFormatError, match="does not fit"):
        resolve_input_shapes(dynamic_onnx, {"input": (2, 3, 8, 16)})
    with pytest.raises(ModelFormatError, match="unknown inputs"):
        resolve_input_shapes(dynamic_onnx, {"x": (1, 3, 16, 16)})
    lat = OnnxRuntimeDevice().run_model(dynamic_onnx, FAST, {"input": (4, 3, 16, 16)})
    assert lat.mean > 0


def test_not_onnx_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ModelFormatError, match="not an ONNX model"):
        OnnxRuntimeDevice().run_model(bad, FAST)
    with pytest.raises(ModelFormatError, match="does not exist"):
        OnnxRuntimeDevice().run_model(tmp_path / "missing.onnx", FAST)


def test_device_info_and_options() -> None:
    device = OnnxRuntimeDevice(affinity=[0], optimization="basic")
    info = device.info(BenchmarkSettings(threads=2))
    assert info.threads == 2 and info.affinity == (0,) and info.properties["optimization"] == "basic"
    assert info.hardware and info.runtime_version
    assert device.check() is None
    assert OnnxRuntimeDevice(provider="NoSuchExecutionProvider").check() is not None
    with pytest.raises(ConfigError):
        OnnxRuntimeDevice(optimization="max")
    with pytest.raises(ConfigError):
        OnnxRuntimeDevice(affinity=[9999])


def test_pinning_restores_affinity(small_onnx: Path) -> None:
    import os

    before = os.sched_getaffinity(0)
    OnnxRuntimeDevice(affinity=[0]).run_model(small_onnx, FAST)
    assert os.sched_getaffinity(0) == before


def test_trace_aggregation_drops_warmup_runs() -> None:
    def run(ts: int) -> dict:
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 50}

    def node(name: str, ts: int, dur: int) -> dict:
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": "Conv", "provider": "CPUExecutionProvider"}}

    events = [run(0), node("a", 1, 999), node("b", 10, 999),  # warm-up run: dropped
              run(100), node("a", 101, 10), node("b", 110, 20), {"cat": "Node", "name": "a_fence_before", "ts": 1},
              run(200), node("a", 201, 12), node("b", 210, 22)]
    ops = ops_from_trace(events, skip_runs=1, outlier="none")
    assert [o.name for o in ops] == ["a", "b"]
    assert ops[0].latency.samples == (0.010, 0.012) and ops[1].latency.mean == pytest.approx(0.021)
    with pytest.raises(DeviceError):
        ops_from_trace(events, skip_runs=3, outlier="none")


def test_profile_facade_on_a_builtin_model() -> None:
    result = profile("ofa-mbv3-min", per_op=True, resolution=128, settings=FAST)
    assert result.input_shapes == {"input": (1, 3, 128, 128)}
    assert result.latency.mean > 0 and len(result.ops) > 10
    assert result.to_dict()["latency_ms"]["median"] == result.latency.median


def test_an_unavailable_provider_is_an_error_not_a_silent_cpu_run(small_onnx: Path) -> None:
    with pytest.raises(DeviceError, match="not available"):
        OnnxRuntimeDevice(provider="CUDAExecutionProvider").run_model(small_onnx, FAST)
    with pytest.raises(ConfigError, match="provider"):
        OnnxRuntimeDevice(provider=5)  # type: ignore[arg-type]


def test_huge_input_shapes_are_refused_before_allocating(dynamic_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="GiB"):
        OnnxRuntimeDevice().run_model(dynamic_onnx, FAST, {"input": (10_000_000, 3, 16, 16)})
