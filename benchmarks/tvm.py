"""ONNX Runtime against untuned TVM (llvm) on OFA-MobileNetV3 ops → results/tvm.md|json.

For a spread of the OFA-MBv3 ops at one resolution (every op with ``--all``): the single-op ONNX model that the
table build measures, run by the ``cpu`` device (ONNX Runtime, 1 thread) and by the ``tvm`` device (TVM 0.27,
llvm target, TVM's default pipeline, 1 thread), with TVM's import + compile time per op; with ``--tuned N``, the
first N of those ops also MetaSchedule-tuned (``--trials`` per kernel, a fresh database) with the tuning time.
On a GPU machine run it with ``--target cuda``.

    .venv/bin/python benchmarks/tvm.py                            # 16 ops at 128 px
    .venv/bin/python benchmarks/tvm.py --tuned 4 --trials 16      # + 4 of them tuned
    .venv/bin/python benchmarks/tvm.py --all --resolution 160
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _shared import tvm_op_rows, write_results

from tailorkit.core.records import BenchmarkSettings
from tailorkit.devices.host import cpu_model
from tailorkit.devices.onnxruntime import OnnxRuntimeDevice
from tailorkit.devices.tvm import TvmDevice
from tailorkit.spaces.ofa_mbv3 import OFAMobileNetV3Space


def run(resolution: int, n_ops: int | None, target: str, n_tuned: int = 0, trials: int = 16) -> dict[str, Any]:
    ops = list({op.key: op for op in OFAMobileNetV3Space(width=1.0).all_ops(resolution)}.values())
    if n_ops is not None and n_ops < len(ops):
        ops = [ops[i] for i in np.linspace(0, len(ops) - 1, n_ops).round().astype(int)]
    settings = BenchmarkSettings(warmup=10, runs=50, threads=1)
    ort, tvm = OnnxRuntimeDevice("cpu"), TvmDevice("tvm", target=target)
    with tempfile.TemporaryDirectory(prefix="tvm-bench-") as tmp:
        tuned = TvmDevice("tvm-tuned", target=target, tuning="metaschedule", trials=trials,
                          tuning_db=str(Path(tmp) / "db"))
        try:
            tvm_info = tvm.info(settings)
            rows = tvm_op_rows(ops, Path(tmp), tvm, tuned, n_tuned, settings,
                               {"ort": lambda _op, path: ort.run_model(path, settings).median})
        finally:
            tvm.close()
            tuned.close()
    return {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cpu": cpu_model(),
            "resolution": resolution, "target": target, "tvm": tvm_info.runtime_version,
            "settings": settings.to_dict(), "trials": trials, "rows": rows}


def _markdown(report: dict[str, Any]) -> str:
    rows = report["rows"]
    ratios = np.array([r["tvm_ms"] / r["ort_ms"] for r in rows])
    compile_s = np.array([r["compile_s"] for r in rows])
    lines = [f"# ONNX Runtime vs untuned TVM {report['tvm']} ({report['target']}), OFA-MBv3 ops at "
             f"{report['resolution']} px", "",
             f"{report['when']}, {report['cpu']}, 1 thread, {report['settings']['warmup']} warm-up + "
             f"{report['settings']['runs']} timed samples (medians). TVM: default pipeline, no tuning.", "",
             "| op | ORT ms | TVM ms | TVM / ORT | compile s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| `{r['key']}` | {r['ort_ms']:.3f} | {r['tvm_ms']:.3f} | {r['tvm_ms'] / r['ort_ms']:.1f}x | "
              f"{r['compile_s']:.2f} |" for r in rows]
    tuned = [r for r in rows if "tuned_ms" in r]
    if tuned:
        lines += ["", f"MetaSchedule, {report['trials']} trials per kernel (replay-trace search under 64 trials, "
                      "random cost model), a fresh database:", "",
                  "| op | ORT ms | untuned ms | tuned ms | tuned / ORT | kernels | tuning + compile s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| `{r['key'][:60]}` | {r['ort_ms']:.3f} | {r['tvm_ms']:.3f} | {r['tuned_ms']:.3f} | "
                  f"{r['tuned_ms'] / r['ort_ms']:.1f}x | {r['kernels']} | {r['tune_s']:.0f} |" for r in tuned]
    lines += ["", f"- {len(rows)} ops: TVM untuned is {np.median(ratios):.1f}x ORT's latency at the median "
                  f"(range {ratios.min():.1f}x–{ratios.max():.1f}x); Σ TVM / Σ ORT = "
                  f"{sum(r['tvm_ms'] for r in rows) / sum(r['ort_ms'] for r in rows):.1f}x.",
              f"- Import + compile per op: median {np.median(compile_s):.2f} s, max {compile_s.max():.2f} s.",
              "- Tables built on the tvm device without tuning carry `untuned = true` in their device properties: "
              "these are not deployment numbers."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--ops", type=int, default=16, help="how many ops, spread over the space's list")
    parser.add_argument("--all", action="store_true", help="every distinct op")
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--tuned", type=int, default=0, help="also MetaSchedule-tune the first N ops")
    parser.add_argument("--trials", type=int, default=16, help="MetaSchedule trials per kernel")
    args = parser.parse_args()
    report = run(args.resolution, None if args.all else args.ops, args.target, args.tuned, args.trials)
    write_results("tvm" if args.target == "llvm" else f"tvm.{args.target}", report, _markdown(report))


if __name__ == "__main__":
    main()
