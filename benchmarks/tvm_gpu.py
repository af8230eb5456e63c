"""TVM on a CUDA GPU against PyTorch eager on the same GPU → results/tvm_gpu.md|json.

Needs a machine with an NVIDIA GPU, PyTorch with CUDA in this interpreter, and a TVM environment whose runtime
loads CUDA (``TAILOR_TVM_PYTHON`` or ``.venv-tvm``; the apache-tvm wheel's ``libtvm_runtime_cuda.so`` needs
``libcudart.so.13`` and the driver's ``libcuda.so.1`` on the loader path). ``scripts/gpu-check.sh`` runs this
with the CLI checks. Measured, all at batch 1:

- whole models (OFA-MBv3 smallest and largest at 224 px): TVM end-to-end median, TVM's per-kernel profile
  (kernels, their sum against end-to-end), PyTorch eager median, and the largest |Δ| between their outputs;
- single ops, spread over the OFA-MBv3 op inventory: TVM (default pipeline: dlight's GPU schedules, untuned)
  against PyTorch eager (cuDNN), with TVM's import + compile time;
- with ``--tuned N``: the first N of those ops MetaSchedule-tuned (``--trials`` per kernel, a fresh database).

    TAILOR_TVM_PYTHON=/opt/tvm/bin/python python benchmarks/tvm_gpu.py --ops 12 --tuned 2 --trials 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _shared import RESULTS, tvm_op_rows, write_results

from tailorkit.core.records import BenchmarkSettings
from tailorkit.devices.tvm import TvmDevice
from tailorkit.profiler.models import BUILTIN_MODELS
from tailorkit.spaces.blocks import build_op, example_input
from tailorkit.spaces.ofa_mbv3 import OFAMobileNetV3Space

SETTINGS = BenchmarkSettings(warmup=20, runs=50, threads=1)


def torch_ms(module: torch.nn.Module, example: torch.Tensor, device: str, runs: int = 50,
             min_sample_ms: float = 3.0) -> float:
    """Median milliseconds per inference of ``module`` in eager mode on ``device``, each sample enough
    inferences to last ``min_sample_ms`` (the same rule the tvm device uses); on CUDA timed with CUDA events."""
    module = module.eval().to(device)
    x = example.to(device)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with torch.inference_mode():
        for _ in range(20):
            module(x)
        sync()
        t0 = time.perf_counter()
        module(x)
        sync()
        number = max(1, int(np.ceil(min_sample_ms / max((time.perf_counter() - t0) * 1e3, 1e-3))))
        samples = []
        for _ in range(runs):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(number):
                    module(x)
                end.record()
                end.synchronize()
                samples.append(start.elapsed_time(end) / number)
            else:
                t0 = time.perf_counter()
                for _ in range(number):
                    module(x)
                samples.append((time.perf_counter() - t0) * 1e3 / number)
    return float(np.median(samples))


def _models(tvm: TvmDevice, tmp: Path, device: str) -> list[dict[str, Any]]:
    rows = []
    for name in ("ofa-mbv3-min", "ofa-mbv3-max"):
        module, shape = BUILTIN_MODELS[name](224)
        torch.manual_seed(0)
        x = torch.randn(*shape)
        path = tmp / f"{name}.onnx"
        torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, opset_version=17, input_names=["input"])
        latency = tvm.run_model(path, SETTINGS)
        compile_s = tvm.last_compile_s
        kernels = tvm.profile_ops(path, SETTINGS)
        np.save(tmp / f"{name}.in.npy", x.numpy())
        out = tvm.infer(path, [tmp / f"{name}.in.npy"], tmp / f"{name}.out")
        with torch.inference_mode():
            reference = module.eval().to(device)(x.to(device)).float().cpu().numpy()
        eager_ms = torch_ms(module, x, device)
        top = sorted(kernels, key=lambda k: -k.latency.mean)[:5]
        row = {"model": name, "tvm_ms": latency.median, "compile_s": compile_s, "torch_ms": eager_ms,
               "kernels": len(kernels), "kernel_sum_ms": sum(k.latency.mean for k in kernels),
               "top_kernels": [{"name": k.name, "ms": k.latency.mean} for k in top],
               "max_abs_diff": float(np.abs(np.load(out[0]) - reference).max()),
               "max_abs_output": float(np.abs(reference).max())}
        rows.append(row)
        print(f"{name}: tvm {row['tvm_ms']:.3f} ms (compile {compile_s:.1f} s), torch eager {eager_ms:.3f} ms, "
              f"{len(kernels)} kernels summing to {row['kernel_sum_ms']:.3f} ms, max |Δ| {row['max_abs_diff']:.2e} "
              f"(outputs up to {row['max_abs_output']:.2e})",
              flush=True)
    return rows


def run(n_ops: int, target: str, n_tuned: int, trials: int, device: str = "cuda", with_models: bool = True) \
        -> dict[str, Any]:
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: PyTorch sees no CUDA device here; this benchmark needs an NVIDIA GPU")
    ops = list({op.key: op for op in OFAMobileNetV3Space(width=1.0).all_ops(224)}.values())
    ops = [ops[i] for i in np.linspace(0, len(ops) - 1, min(n_ops, len(ops))).round().astype(int)]
    tvm = TvmDevice("rtx", target=target)
    problem = tvm.check()
    if problem:
        tvm.close()
        sys.exit(f"error: {problem}")
    with tempfile.TemporaryDirectory(prefix="tvm-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        tuned = TvmDevice("rtx-tuned", target=target, tuning="metaschedule", trials=trials,
                          tuning_db=str(tmp / "db"))
        try:
            info = tvm.info(SETTINGS)
            models = _models(tvm, tmp, device) if with_models else []
            rows = tvm_op_rows(ops, tmp, tvm, tuned, n_tuned, SETTINGS,
                               {"torch": lambda op, _path: torch_ms(build_op(op), example_input(op), device)})
        finally:
            tvm.close()
            tuned.close()
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else info.hardware
    return {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "gpu": gpu,
            "torch_device": device,
            "device": info.to_dict(), "torch": torch.__version__, "target": target, "trials": trials,
            "settings": SETTINGS.to_dict(), "models": models, "rows": rows}


def _markdown(report: dict[str, Any]) -> str:
    info = report["device"]
    lines = [f"# TVM {info['runtime_version']} on {report['gpu']} against PyTorch {report['torch']} eager", "",
             f"{report['when']}; target `{info['properties'].get('target')}`, compute capability "
             f"{info['properties'].get('compute_version', '?')}; batch 1, {report['settings']['warmup']} warm-up + "
             f"{report['settings']['runs']} timed samples (medians; each sample enough inferences for 3 ms). TVM: "
             "default pipeline (dlight schedules on GPU targets), untuned unless a row says tuned. PyTorch: eager on "
             f"{report['torch_device']}" + (", timed with CUDA events." if report["torch_device"].startswith("cuda")
                                            else "."),
             "", "## Whole models (224 px)", "",
             "| model | TVM ms | PyTorch ms | TVM / PyTorch | compile s | kernels | Σ kernels ms | max abs diff | "
             "max abs output |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in report["models"]:
        lines.append(f"| {m['model']} | {m['tvm_ms']:.3f} | {m['torch_ms']:.3f} | {m['tvm_ms'] / m['torch_ms']:.2f}x "
                     f"| {m['compile_s']:.1f} | {m['kernels']} | {m['kernel_sum_ms']:.3f} | {m['max_abs_diff']:.1e} "
                     f"| {m['max_abs_output']:.1e} |")
    lines += ["", "Σ kernels is the per-kernel profile (a device synchronisation around every kernel), so it "
              "exceeds end-to-end by the launch and sync cost of each kernel.", "",
              "## Single OFA-MBv3 ops (224 px)", "",
              "| op | TVM ms | PyTorch ms | TVM / PyTorch | compile s | tuned ms | tune s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        tuned = (f"{r['tuned_ms']:.4f} | {r['tune_s']:.0f}") if "tuned_ms" in r else " | "
        lines.append(f"| `{r['key']}` | {r['tvm_ms']:.4f} | {r['torch_ms']:.4f} | {r['tvm_ms'] / r['torch_ms']:.2f}x "
                     f"| {r['compile_s']:.2f} | {tuned} |")
    ratios = np.array([r["tvm_ms"] / r["torch_ms"] for r in report["rows"]])
    if len(ratios):
        lines += ["", f"Untuned TVM / PyTorch eager over {len(ratios)} ops: median {np.median(ratios):.2f}x "
                  f"(range {ratios.min():.2f}–{ratios.max():.2f}x)."]
    tuned_rows = [r for r in report["rows"] if "tuned_ms" in r]
    if tuned_rows:
        lines.append(f"MetaSchedule, {report['trials']} trials per kernel: " + ", ".join(
            f"{r['tvm_ms']:.4f} → {r['tuned_ms']:.4f} ms ({r['tune_s']:.0f} s)" for r in tuned_rows) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=12, help="how many ops, spread over the space's list")
    parser.add_argument("--target", default="cuda")
    parser.add_argument("--tuned", type=int, default=0, help="also MetaSchedule-tune the first N ops")
    parser.add_argument("--trials", type=int, default=32, help="MetaSchedule trials per kernel")
    parser.add_argument("--torch-device", default="cuda", help="where PyTorch eager runs (cpu with --target llvm "
                        "checks this script on a machine without a GPU)")
    parser.add_argument("--no-models", action="store_true", help="single ops only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for tvm_gpu.md|json")
    args = parser.parse_args()
    report = run(args.ops, args.target, args.tuned, args.trials, args.torch_device, not args.no_models)
    write_results("tvm_gpu", report, _markdown(report), args.out)


if __name__ == "__main__":
    main()
