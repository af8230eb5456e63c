"""Pieces the benchmark scripts share (they run as scripts, so this folder is on ``sys.path``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(stem: str, report: dict[str, Any], markdown: str, folder: Path = RESULTS) -> None:
    """``folder/stem.json`` (the raw report) and ``folder/stem.md`` (its table), then the table on stdout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (folder / f"{stem}.md").write_text(markdown)
    print(markdown)


def tuned_row(tuned: Any, path: Path, settings: Any) -> dict[str, Any]:
    """A MetaSchedule-tuned measurement of ``path`` on the tvm device ``tuned``: median ms, tuning seconds and
    how many kernels the model has."""
    return {"tuned_ms": tuned.run_model(path, settings).median, "tune_s": tuned.last_compile_s,
            "kernels": tuned.last_tuning.get("kernels")}


def tvm_op_rows(ops: Sequence[Any], folder: Path, tvm: Any, tuned: Any, n_tuned: int, settings: Any,
                baselines: Mapping[str, Callable[[Any, Path], float]]) -> list[dict[str, Any]]:
    """One row per op: exported to ONNX, its median ms under each named baseline (``NAME_ms``) and on the tvm
    device with the compile seconds, and MetaSchedule-tuned on ``tuned`` for the first ``n_tuned``; a line each
    as it goes."""
    from tailorkit.profiler.tables import export_op

    rows = []
    for i, op in enumerate(ops):
        path = export_op(op, folder / f"op{i}")
        row: dict[str, Any] = {"key": op.key}
        row.update({f"{name}_ms": measure(op, path) for name, measure in baselines.items()})
        row.update(tvm_ms=tvm.run_model(path, settings).median, compile_s=tvm.last_compile_s)
        if i < n_tuned:
            row.update(tuned_row(tuned, path, settings))
        rows.append(row)
        print(f"{i + 1}/{len(ops)} {op.key[:64]:64s} "
              + "  ".join(f"{name} {row[f'{name}_ms']:.4f} ms" for name in (*baselines, "tvm"))
              + f"  compile {row['compile_s']:.2f} s"
              + (f"  tuned {row['tuned_ms']:.4f} ms in {row['tune_s']:.0f} s" if "tuned_ms" in row else ""),
              flush=True)
    return rows



def calibrate_both_ways(table: Any, space: Any, reference: Any, n: int = 8, rounds: int = 3) -> tuple[Any, ...]:
    """`tailor predictor calibrate` on ``table`` for ``space`` on the CPU: ``n`` subnets, each measured in
    alternation with ``reference`` (the speed reference), ``rounds`` times round-robin (the CLI's default). The
    same runs also give the plain calibration, on each model's own median. Returns (calibrated predictor, plain
    predictor, the calibration subnets, their table sums, measured at the reference's speed, measured
    plainly)."""
    from tailorkit.predictors import LutSumPredictor
    from tailorkit.predictors.lut import calibrate_against_reference, calibration_archs, measure_and_correct
    from tailorkit.profiler.api import profile_archs_paired

    pred, plain = LutSumPredictor(table, device="cpu"), LutSumPredictor(table, device="cpu")
    own: dict[int, list[float]] = {}

    def measure_pair(arch: Any) -> tuple[float, float]:
        lat = profile_archs_paired(space, arch, reference, "cpu")
        own.setdefault(id(arch), []).append(float(lat.target.median))
        return lat.ratio, float(lat.reference.median)

    print("calibration…", flush=True)
    archs = calibration_archs(space, pred, n, seed=0)
    sums, at_reference = calibrate_against_reference(pred, space, archs, reference, measure_pair, rounds)
    from statistics import median

    _, measured = measure_and_correct(plain, space, archs, lambda a: median(own[id(a)]))
    return pred, plain, archs, sums, at_reference, measured
