"""Pruning benchmark → benchmarks/results/prune.{md,json}.

AMC-style channel pruning (``tailorkit.search.prune``) of OFA-MobileNetV3's largest subnet at 160 px (width 1.0,
weights from a digits supernet), with every op the pruning can use measured on this machine's CPU (ONNX Runtime)
into the store first. For two budgets (a share of the unpruned subnet's table latency) and several seeds:

* digits validation / test accuracy of the best pruning found (batch norm re-estimated, before fine-tuning) by
  AMC's DDPG agent, evolution (OFA's defaults, constraint filter) and random search at the same number of
  episodes, against **uniform pruning** (the largest single keep ratio that meets the budget: the baseline AMC
  compares with);
* the DDPG winners fine-tuned, exported to ONNX and measured end to end on the CPU: measured vs predicted
  latency (the closed loop).

Usage: ``python benchmarks/prune.py [--supernet CKPT] [--episodes 150] [--seeds 2] [--db URL]``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _shared import write_results

RATIOS = (0.5, 0.7)
STRATEGIES = ("ddpg", "evolution", "random")
ROUNDS = 3


def supernet_checkpoint(path: Path | None) -> Path:
    from tailorkit.search.supernet import SupernetConfig, train_supernet

    if path is not None:
        return path
    ckpt = Path(tempfile.mkdtemp(prefix="tailor-bench-supernet-"))
    print("training a digits supernet (8 epochs, width 1.0) …", flush=True)
    train_supernet(SupernetConfig(epochs=8), ckpt)
    return ckpt


def interleaved(base: Any, pruned: Any, shape: Any, rounds: int = ROUNDS) -> tuple[list[float], list[float]]:
    """Median ms of the unpruned and the pruned network on the CPU, measured in alternation: this VM's speed
    drifts by tens of percent between minutes (results/drift.md), and a ratio of runs taken together holds."""
    from tailorkit.profiler.api import profile

    b, p = [], []
    for _ in range(rounds):
        b.append(float(profile(base, "cpu", input_shapes={"input": shape}).latency.median))
        p.append(float(profile(pruned, "cpu", input_shapes={"input": shape}).latency.median))
    return b, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", type=Path, default=None, help="ofa-mbv3 width-1.0 digits supernet checkpoint")
    ap.add_argument("--episodes", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--finetune", type=int, default=3, help="fine-tuning epochs of the DDPG winners")
    ap.add_argument("--db", default="sqlite:///tailor.db")
    args = ap.parse_args()

    from tailorkit.core.config import load_config
    from tailorkit.core.errors import ConfigError
    from tailorkit.profiler.api import open_device
    from tailorkit.profiler.store import TableStore
    from tailorkit.search.prune import PruningSpace, measured_latency, prune, write_result
    from tailorkit.search.specialize import ExportOptions, export_prune_result
    from tailorkit.search.supernet import load_digits_splits
    from tailorkit.spaces import OFAMobileNetV3Space
    from tailorkit.spaces.base import DIGITS_CLASSES

    ckpt = supernet_checkpoint(args.supernet)
    space = OFAMobileNetV3Space(width=1.0)
    arch = space.largest(160)
    # priced and measured with the digits head the pruned networks ship with, as `tailor prune` does
    pruning = PruningSpace(space, arch, num_classes=DIGITS_CLASSES)
    config = load_config()
    t = time.perf_counter()
    with TableStore(args.db) as store, open_device("cpu", config) as dev:
        latency = measured_latency(pruning, dev, store, config.settings("cpu"))
    measure_s = time.perf_counter() - t
    full = float(latency(np.array([[8] * pruning.n_blocks]))[0])
    smallest = float(latency(np.array([[2] * pruning.n_blocks]))[0])
    print(f"{len(pruning.grid_ops())} ops measured/reused in {measure_s:.0f} s; unpruned {full:.3f} ms, smallest "
          f"pruning {smallest:.3f} ms", flush=True)
    data = load_digits_splits()
    runs: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tailor-bench-prune-") as tmp:
        for ratio in RATIOS:
            target = ratio * full
            for strategy in STRATEGIES:
                for seed in range(args.seeds):
                    finetune = args.finetune if strategy == "ddpg" else 0
                    try:
                        res, net = prune(space, arch, ckpt, latency, target_ms=target, strategy=strategy,
                                         episodes=args.episodes, seed=seed, finetune_epochs=finetune, data=data)
                    except ConfigError as exc:  # random search under a tight budget may find nothing
                        runs.append({"ratio": ratio, "target_ms": target, "strategy": strategy, "seed": seed,
                                     "failed": str(exc)})
                        print(f"ratio {ratio} {strategy} seed {seed}: {exc}", flush=True)
                        continue
                    row = {"ratio": ratio, "target_ms": target, "strategy": strategy, "seed": seed,
                           "latency_ms": res.predicted["latency_ms"], "val": res.accuracy["searched"]["val"],
                           "test": res.accuracy["searched"]["test"], "search_s": res.seconds,
                           "keep_eighths": res.keep_eighths, "uniform": res.uniform,
                           "base": res.accuracy["base"], "parameters": res.weights["parameters"],
                           "base_parameters": res.weights["base_parameters"]}
                    if finetune:
                        row["fine_tuned"] = res.accuracy["fine_tuned"]
                    runs.append(row)
                    print(f"ratio {ratio} {strategy} seed {seed}: {row['latency_ms']:.3f} ms, val {row['val']:.4f} "
                          f"test {row['test']:.4f} (uniform val {res.uniform['accuracy_val'] if res.uniform else '-'})"
                          f", {res.seconds:.0f} s", flush=True)
                    if strategy == "ddpg" and seed == 0:
                        path = Path(tmp) / f"p{ratio}.json"
                        write_result(res, path, net)
                        m = export_prune_result(path, Path(tmp) / f"onnx{ratio}", ExportOptions(device="cpu"))
                        measured = m.measured or {}
                        base_ms, pruned_ms = interleaved(pruning.base_space.build(arch), net,
                                                       space.input_shape(arch))
                        closed.append({"ratio": ratio, "predicted_ms": res.predicted["latency_ms"],
                                       "measured_ms": measured["latency_ms"]["mean"],
                                       "error_pct": measured.get("error_pct"),
                                       # against the unpruned subnet run in alternation: at the calibration's speed
                                       "speed_reference": measured.get("speed_reference"),
                                       "accuracy_runtime": m.accuracy.get("runtime"),
                                       "rounds_base_ms": base_ms, "rounds_pruned_ms": pruned_ms,
                                       "predicted_speedup": full / res.predicted["latency_ms"],
                                       "measured_speedup": float(np.median(base_ms) / np.median(pruned_ms))})
                        print(f"  exported and measured: {closed[-1]['measured_ms']:.3f} ms "
                              f"({closed[-1]['error_pct']:+.1f} % vs predicted); speed-up over the unpruned "
                              f"subnet measured {closed[-1]['measured_speedup']:.2f}x, predicted "
                              f"{closed[-1]['predicted_speedup']:.2f}x", flush=True)
    report = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "supernet": str(ckpt),
              "arch": space.arch_to_dict(arch), "blocks": pruning.n_blocks, "episodes": args.episodes,
              "num_classes": int(pruning.base_space.num_classes), "unpruned_ms": full, "smallest_ms": smallest,
              "measure_s": measure_s, "calibration": latency.calibration, "runs": runs, "closed": closed}
    write_results("prune", report, markdown(report))


def markdown(r: dict[str, Any]) -> str:
    ok = [x for x in r["runs"] if "failed" not in x]
    base = ok[0]["base"]
    lines = ["# Pruning benchmark", "",
             f"Machine: {r['machine']}. Generated by `benchmarks/prune.py`.", "",
             f"OFA-MBv3 width 1.0, largest subnet at 160 px ({r['blocks']} prunable blocks) with its "
             f"{r.get('num_classes', 1000)}-class classifier, digits supernet weights: unpruned "
             f"{r['unpruned_ms']:.3f} ms on this CPU's table (every block at every kept width "
             f"measured by ONNX Runtime, {r['measure_s']:.0f} s with what the store already held), digits "
             f"accuracy val {base['val']:.4f} / test {base['test']:.4f}; the smallest pruning is "
             f"{r['smallest_ms']:.3f} ms. {r['episodes']} episodes per search; accuracy after batch-norm "
             "re-estimation, before fine-tuning.", *_calibration_line(r.get("calibration")), "",
             "| budget | strategy | seeds | latency ms | val accuracy | test accuracy | s per search |",
             "|---|---|---|---|---|---|---|"]
    for ratio in RATIOS:
        rows = [x for x in ok if x["ratio"] == ratio]
        u = rows[0]["uniform"]
        if u:
            lines.append(f"| {ratio:.0%} ({rows[0]['target_ms']:.3f} ms) | uniform {u['keep_eighths'][0]}/8 | - | "
                         f"{u['latency_ms']:.3f} | {u['accuracy_val']:.4f} | {u['accuracy_test']:.4f} | - |")
        for strategy in STRATEGIES:
            s = [x for x in rows if x["strategy"] == strategy]
            failed = sum(1 for x in r["runs"] if x["ratio"] == ratio and x["strategy"] == strategy and "failed" in x)
            if not s:
                lines.append(f"| {ratio:.0%} | {strategy} | 0 of {failed} found a pruning within budget | | | | |")
                continue
            val, test = np.array([x["val"] for x in s]), np.array([x["test"] for x in s])
            found = f"{len(s)}" + (f" ({failed} found none)" if failed else "")
            lines.append(f"| {ratio:.0%} | {strategy} | {found} | {np.mean([x['latency_ms'] for x in s]):.3f} | "
                         f"{val.mean():.4f} ± {val.std():.4f} | {test.mean():.4f} ± {test.std():.4f} | "
                         f"{np.mean([x['search_s'] for x in s]):.0f} |")
    tuned = [x for x in ok if "fine_tuned" in x]
    if tuned:
        lines += ["", "DDPG winners after fine-tuning: " + "; ".join(
            f"{x['ratio']:.0%} seed {x['seed']}: val {x['fine_tuned']['val']:.4f} test {x['fine_tuned']['test']:.4f}, "
            f"{x['parameters']:,} of {x['base_parameters']:,} parameters" for x in tuned) + "."]
    if r["closed"]:
        lines += ["", "## Closed loop (DDPG winners, seed 0: fine-tuned, exported to ONNX, measured on the CPU)", "",
                  "The export's own measurement against the table's prediction, then the unpruned and the pruned "
                  f"network measured in {ROUNDS} alternating rounds (medians): their ratio is the speed-up, which "
                  "this VM's drift between the table's day and today does not move.", "",
                  "| budget | predicted ms | measured at export ms | error | error at the calibration's speed "
                  "| speed-up predicted | speed-up measured | ONNX Runtime test accuracy |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c['ratio']:.0%} | {c['predicted_ms']:.3f} | {c['measured_ms']:.3f} | {c['error_pct']:+.1f} % | "
                  f"{_speed_reference_cell(c.get('speed_reference'))} | {c['predicted_speedup']:.2f}x | "
                  f"{c['measured_speedup']:.2f}x | {c['accuracy_runtime']:.4f} |" for c in r["closed"]]
        if any(c.get("speed_reference") for c in r["closed"]):
            lines += ["", "Error at the calibration's speed: the pruned network measured in alternation with the "
                          "unpruned subnet the calibration measured (the export's speed reference), its ratio × "
                          "that subnet's latency at calibration time."]
    return "\n".join(lines) + "\n"


def _speed_reference_cell(ref: dict[str, Any] | None) -> str:
    if not ref or ref.get("error_pct") is None:
        return "-"
    return f"{ref['error_pct']:+.1f} % (machine ×{ref['slowdown']:.2f})"


def _calibration_line(cal: dict[str, Any] | None) -> list[str]:
    if not cal:
        return []
    m, t = cal["measured_ms"], cal["table_sum_ms"]
    return ["", f"Table calibrated on whole networks: {cal['scale']:.3f} × sum {cal['offset_ms']:+.3f} ms, through "
                f"the unpruned subnet ({m['unpruned']:.3f} ms measured, table sum {t['unpruned']:.3f}) and the "
                f"smallest pruning ({m['smallest']:.3f} ms, sum {t['smallest']:.3f}; ratio {cal['ratio']:.4f}, "
                f"interquartile range {100 * cal['ratio_spread']:.1f} % over {cal['pairs']} alternating pairs)."]


if __name__ == "__main__":
    main()
