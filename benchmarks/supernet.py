"""OFA-MobileNetV3 supernet on scikit-learn's digits: does weight sharing rank subnets like training them alone?

* trains the supernet (progressive shrinking with the sandwich rule and in-place distillation, ``--epochs``)
  and, with ``--ablation``, the same schedule on labels only (no sandwich, no distillation), and times both;
* the largest, the smallest and ``--subnets`` random subnets: validation and test accuracy and cross-entropy
  run by each supernet (batch norm recalibrated), and test accuracy after extracting and fine-tuning the
  subnet for ``--finetune`` epochs;
* ``--standalone`` of the random subnets also trained from scratch for each budget in ``--scratch-epochs``,
  once per ``--scratch-seeds`` seed: Kendall τ between the supernet's ranking and the stand-alone one (mean
  over seeds; goal ≥ 0.6 on 10 subnets) by accuracy and by cross-entropy, on validation, test and both
  together (540 images); and each reference's own noise ceiling — τ between the stand-alone rankings of two
  seeds (mean over seed pairs): where that is near 0 the subnets do not differ in that measure beyond training
  noise, and no ranking can agree with the reference but by luck.

Writes ``benchmarks/results/supernet.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _shared import write_results
from scipy.stats import kendalltau

from tailorkit.search.supernet import (
    DigitsSplits,
    SupernetConfig,
    accuracy,
    at_resolution,
    evaluate_arch,
    load_digits_splits,
    train_subnet,
    train_supernet,
)
from tailorkit.spaces import OFAMobileNetV3Space

log = logging.getLogger("bench")
SPLITS = ("val", "test")
MEASURES = ("acc", "loss")


@torch.no_grad()
def cross_entropy(model: torch.nn.Module, data: DigitsSplits, r: int, split: str) -> float:
    x, y = data.split(split)
    model.eval()
    return float(F.cross_entropy(model(at_resolution(x, r)), y))


def supernet_rows(net: Any, data: DigitsSplits, archs: list[tuple[str, Any]], finetune: int) -> list[dict[str, Any]]:
    rows = []
    for name, arch in archs:
        row: dict[str, Any] = {"name": name, "arch": arch.to_dict()}
        row["acc_val"] = evaluate_arch(net, data, arch, "val")  # recalibrates BN for the arch and leaves it so
        row["acc_test"] = accuracy(net, data, arch.r, "test")
        for split in SPLITS:
            row[f"loss_{split}"] = cross_entropy(net, data, arch.r, split)
        if finetune:
            tuned = train_subnet(net.extract(arch), data, arch.r, epochs=finetune, lr=0.01)
            row["finetuned_test"] = accuracy(tuned, data, arch.r, "test")
        rows.append(row)
        log.info("%s: val %.3f test %.3f", name, row["acc_val"], row["acc_test"])
    return rows


def standalone(arch: Any, data: DigitsSplits, epochs: int, seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {f"{m}_{s}": [] for m in MEASURES for s in SPLITS}
    t0 = time.perf_counter()
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = train_subnet(OFAMobileNetV3Space(num_classes=10).build(arch), data, arch.r, epochs=epochs, seed=seed)
        for split in SPLITS:
            out[f"acc_{split}"].append(accuracy(model, data, arch.r, split))
            out[f"loss_{split}"].append(cross_entropy(model, data, arch.r, split))
    out["seconds"] = (time.perf_counter() - t0) / seeds
    return out


def measure(values: dict[str, Any], m: str, split: str) -> Any:
    """One measure on ``val``, ``test`` or ``held-out`` (the mean of the two: 540 images); lists stay lists."""
    if split != "held-out":
        return values[f"{m}_{split}"]
    a, b = values[f"{m}_val"], values[f"{m}_test"]
    return [(x + y) / 2 for x, y in zip(a, b, strict=True)] if isinstance(a, list) else (a + b) / 2


def taus(rows: list[dict[str, Any]], budget: str, seeds: int) -> dict[str, dict[str, float]]:
    """Per measure and split: τ of the supernet vs the stand-alone mean, and the seed-pair noise ceiling."""
    out: dict[str, dict[str, float]] = {}
    pairs = [(a, b) for a in range(seeds) for b in range(a + 1, seeds)]
    for m in MEASURES:
        for split in (*SPLITS, "held-out"):
            per_seed = [measure(row["standalone"][budget], m, split) for row in rows]
            ref = [float(np.mean(s)) for s in per_seed]
            entry = {"supernet": float(kendalltau([measure(row, m, split) for row in rows], ref).statistic)}
            if "ablation" in rows[0]:
                entry["ablation"] = float(kendalltau([measure(row["ablation"], m, split) for row in rows],
                                                     ref).statistic)
            if pairs:
                entry["seeds"] = float(np.mean([kendalltau([s[a] for s in per_seed], [s[b] for s in per_seed])
                                                .statistic for a, b in pairs]))
            out[f"{m} {split}"] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--finetune", type=int, default=1)
    parser.add_argument("--standalone", type=int, default=10)
    parser.add_argument("--scratch-epochs", default="3,8", help="comma-separated stand-alone training budgets")
    parser.add_argument("--scratch-seeds", type=int, default=5)
    parser.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--stem", default="supernet")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stderr)
    from tailorkit.devices.host import cpu_model

    budgets = [int(b) for b in args.scratch_epochs.split(",") if b]
    data = load_digits_splits()
    space = OFAMobileNetV3Space()
    r: dict[str, Any] = {"machine": f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}",
                         "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "args": vars(args)}
    rng = np.random.default_rng(0)
    archs = [("largest", space.largest(224)), ("smallest", space.smallest(128))]
    archs += [(f"random {i}", space.sample(rng)) for i in range(args.subnets)]
    configs = {"supernet": SupernetConfig(epochs=args.epochs)}
    if args.ablation:
        configs["ablation"] = SupernetConfig(epochs=args.epochs, sandwich=False, distill=0.0)
    results: dict[str, list[dict[str, Any]]] = {}
    for label, config in configs.items():
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            net = train_supernet(config, Path(tmp) / "ckpt", data=data)
            r[f"{label}_train_s"] = time.perf_counter() - t0
        results[label] = supernet_rows(net, data, archs, args.finetune if label == "supernet" else 0)
    rows = results["supernet"]
    for i, row in enumerate(rows):
        if "ablation" in results:
            row["ablation"] = {k: v for k, v in results["ablation"][i].items() if k.startswith(MEASURES)}
    ranked = rows[2:2 + args.standalone]
    for row in ranked:
        arch = space.arch_from_dict(row["arch"])
        row["standalone"] = {str(b): standalone(arch, data, b, args.scratch_seeds) for b in budgets}
        log.info("%s: stand-alone val %s", row["name"],
                 {b: np.round(v["acc_val"], 3).tolist() for b, v in row["standalone"].items()})
    if len(ranked) >= 3:
        r["kendall_tau"] = {str(b): taus(ranked, str(b), args.scratch_seeds) for b in budgets}
    r["subnets"] = rows
    write_results(args.stem, r, markdown(r) + "\n")


def markdown(r: dict[str, Any]) -> str:
    a = r["args"]
    lines = ["# OFA-MobileNetV3 supernet on digits", "", f"{r['machine']}, {r['date']}", "",
             f"Supernet: {a['epochs']} epochs of progressive shrinking with the sandwich rule and in-place "
             f"distillation in {r['supernet_train_s']:.0f} s"
             + (f"; ablation (same schedule, labels only, largest + one sampled subnet per step) in "
                f"{r['ablation_train_s']:.0f} s" if "ablation_train_s" in r else "")
             + f". Accuracy of each subnet run by the supernet (BN recalibrated) and after extracting and "
             f"fine-tuning it for {a['finetune']} epoch(s); stand-alone = the same arch trained from scratch, "
             f"mean over {a['scratch_seeds']} seeds.", ""]
    for budget, table in r.get("kendall_tau", {}).items():
        lines += [f"Kendall τ on {a['standalone']} subnets against stand-alone training for {budget} epochs "
                  f"(held-out = validation and test, 540 images); seeds = the reference's noise ceiling, τ "
                  "between two seeds' rankings (mean over pairs):", "",
                  "| measure | supernet | ablation | seeds |", "|---|---|---|---|"]
        for key, entry in table.items():
            cells = [f"{entry[c]:.2f}" if c in entry else "" for c in ("supernet", "ablation", "seeds")]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("")
    budgets = list(r["subnets"][2].get("standalone", {})) if len(r["subnets"]) > 2 else []
    lines += ["| subnet | r | depths | supernet val / test | ablation val / test | fine-tuned test | "
              + " | ".join(f"stand-alone {b} ep. val / test" for b in budgets) + " |",
              "|---|---|---|---|---|---|" + "---|" * len(budgets)]
    for row in r["subnets"]:
        abl = row.get("ablation")
        cells = [f"{row['acc_val']:.3f} / {row['acc_test']:.3f}",
                 f"{abl['acc_val']:.3f} / {abl['acc_test']:.3f}" if abl else "",
                 f"{row['finetuned_test']:.3f}" if "finetuned_test" in row else ""]
        for b in budgets:
            alone = row.get("standalone", {}).get(b)
            cells.append(f"{np.mean(alone['acc_val']):.3f} / {np.mean(alone['acc_test']):.3f}" if alone else "")
        lines.append(f"| {row['name']} | {row['arch']['r']} | {row['arch']['d']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
