"""The benchmark_model output parser, on real outputs published by others (tests/fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailorkit.core.errors import DeviceError, ModelFormatError, TailorError
from tailorkit.devices.tflite_benchmark import parse_benchmark_output

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(("name", "rows", "has_start", "total_ms"), [
    ("older_oplevel_mobilenet_v1_riscv.txt", 31, True, 2949.9),
    ("older_oplevel_nnapi_delegate_yolov5s.txt", 14, True, 164.609),
    ("newer_info_xnnpack_oplevel_efficientdet_lite0_x86.txt", 171, False, 15.3092),
])
def test_per_op_profiles_add_up_to_the_measured_inference(name: str, rows: int, has_start: bool,
                                                            total_ms: float) -> None:
    out = parse_benchmark_output(read(name))
    profile = out.profile
    assert profile is not None and len(profile.run_order) == rows
    assert all((op.start_ms is not None) == has_start for op in profile.run_order)
    assert profile.timings is not None and profile.timings.latency().mean == pytest.approx(total_ms)
    ops = out.op_latencies()
    # per call x calls per inference: the rows add up to the tool's own average, to its print precision
    assert sum(o.latency.mean for o in ops) == pytest.approx(total_ms, rel=2e-3)
    assert sum(t.avg_ms for t in profile.by_node_type) == pytest.approx(total_ms, rel=1e-2)  # its own rounding
    assert out.initialization is not None and {o.node_type for o in out.initialization.run_order} <= {
        "AllocateTensors", "ModifyGraphWithDelegate"}


def test_newer_layout_keeps_delegate_kernels_and_their_call_counts() -> None:
    out = parse_benchmark_output(read("newer_info_xnnpack_oplevel_efficientdet_lite0_x86.txt"))
    ops = {o.name: o for o in out.profile.run_order}
    dw = ops["Delegate/Convolution (NHWC, QC8) DWConv:1"]
    assert dw.node_type == "Convolution (NHWC, QC8) DWConv" and dw.times_called == 13 and dw.avg_ms == 0.051
    assert ops["[tfl.quantize]:0"].node_type == "QUANTIZE"
    providers = {o.provider for o in out.op_latencies()}
    assert providers == {"xnnpack", "builtin"}
    assert out.init_ms == pytest.approx(32.163)
    assert out.warmup.count == 32 and out.regular.count == 64
    assert out.latency().mean == pytest.approx(15.5176) and out.latency().std == pytest.approx(0.551)
    assert out.inference_us["Inference (avg)"] == pytest.approx(15517.6)


def test_older_layout_reads_scientific_notation_and_delegate_rows() -> None:
    out = parse_benchmark_output(read("older_oplevel_mobilenet_v1_riscv.txt"))
    assert out.regular.values["avg"] == pytest.approx(2.95034e6) and out.latency().mean == pytest.approx(2950.34)
    assert out.inference_us["Warmup (avg)"] == pytest.approx(3.51239e6)
    assert out.profile.run_order[0].name == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"
    nnapi = parse_benchmark_output(read("older_oplevel_nnapi_delegate_yolov5s.txt"))
    delegate = [o for o in nnapi.profile.run_order if o.node_type == "TfLiteNnapiDelegate"]
    assert delegate and all(o.provider == "TfLiteNnapiDelegate" for o in nnapi.op_latencies()
                            if o.op_type == "TfLiteNnapiDelegate")
    assert any(", " in o.name for o in delegate)  # a delegate node names the several tensors it produces
    assert nnapi.initialization.run_order[1].times_called == 2


@pytest.mark.parametrize("name", ["e2e_excerpt_yolov5s_fp32_cpu.txt", "newer_info_e2e_efficientdet_lite0_x86.txt"])
def test_end_to_end_outputs(name: str) -> None:
    out = parse_benchmark_output(read(name))
    assert out.profile is None and out.latency().mean == pytest.approx(out.inference_us["Inference (avg)"] / 1e3)
    with pytest.raises(ModelFormatError, match="--enable_op_profiling=true"):
        out.op_latencies()


def test_logcat_wrapped_output_of_the_benchmark_app() -> None:
    # the Android benchmark app writes the same lines through logcat: same numbers once the prefix is gone
    text = read("older_oplevel_mobilenet_v1_riscv.txt")
    wrapped = "\n".join(f"05-30 13:04:39.021 25935 25935 I tflite  : {line}" for line in text.splitlines())
    plain, logcat = parse_benchmark_output(text), parse_benchmark_output(wrapped)
    assert logcat.latency() == plain.latency() and logcat.op_latencies() == plain.op_latencies()


@pytest.mark.parametrize(("name", "message"), [
    ("crash_nnapi_bad_data_yolov5s_int8.txt", "Benchmarking failed"),
    ("crash_segfault_vx_delegate_excerpt.txt", "Segmentation fault"),
])
def test_failed_runs_are_device_errors_with_the_tools_reason(name: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        parse_benchmark_output(read(name))


def test_garbage_truncated_and_nonzero_exit() -> None:
    with pytest.raises(ModelFormatError, match="not benchmark_model output"):
        parse_benchmark_output("hello\nworld\n")
    text = read("newer_info_xnnpack_oplevel_efficientdet_lite0_x86.txt")
    lines = text.splitlines()
    with pytest.raises(ModelFormatError, match="truncated inside the per-op profile"):
        parse_benchmark_output("\n".join(lines[:120]))  # cut inside the regular runs' Run Order
    head = [ln for ln in lines[:12] if "count=" not in ln]
    with pytest.raises(ModelFormatError, match="ends before any timings"):
        parse_benchmark_output("\n".join(head))
    with pytest.raises(DeviceError, match="exit status 139"):
        parse_benchmark_output(read("e2e_excerpt_yolov5s_fp32_cpu.txt"), returncode=139)
    broken = text.replace("Delegate/Convolution (NHWC, QC8) IGEMM:0", "", 1).replace(
        "0.398           0.407", "0.398", 1)
    with pytest.raises(ModelFormatError, match="cannot read the op row"):
        parse_benchmark_output(broken)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(read("older_oplevel_mobilenet_v1_riscv.txt").splitlines()
                                + ["STARTING!", "count=3 avg=1e3", "garbage ][", ""]), max_size=60))
def test_any_mix_of_lines_parses_or_fails_cleanly(lines: list[str]) -> None:
    try:
        parse_benchmark_output("\n".join(lines))
    except TailorError:
        pass


def test_output_cut_after_the_warm_up_is_not_read_as_the_timed_runs() -> None:
    lines = read("older_oplevel_mobilenet_v1_riscv.txt").splitlines()
    cut = lines[:lines.index("count=1 curr=3512391") + 1]
    with pytest.raises(ModelFormatError, match="ends after the warm-up"):
        parse_benchmark_output("\n".join(cut))


def test_failure_words_inside_op_names_and_log_lines_inside_tables() -> None:
    text = read("newer_info_xnnpack_oplevel_efficientdet_lite0_x86.txt")
    renamed = text.replace("[tfl.quantize]:0", "[Aborted/Failed to invoke]:0")
    op = parse_benchmark_output(renamed).profile.run_order[0]
    assert op.name == "[Aborted/Failed to invoke]:0"
    lines = text.splitlines()
    at = lines.index("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:") + 4
    noisy = lines[:at] + ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
                          "WARNING: some interleaved log line"] + lines[at:]
    assert parse_benchmark_output("\n".join(noisy)).op_latencies() == parse_benchmark_output(text).op_latencies()
    windows = text.replace("\n", "\r\n")
    assert parse_benchmark_output(windows).latency() == parse_benchmark_output(text).latency()
