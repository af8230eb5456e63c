"""OFA-MobileNetV3 supernet on scikit-learn's digits: does weight sharing rank subnets like training them alone?

* trains the supernet (progressive shrinking, ``--epochs``) and times it;
* the largest, the smallest and ``--subnets`` random subnets: test accuracy run by the supernet (batch norm
  recalibrated) and after extracting and fine-tuning each for ``--finetune`` epochs;
* ``--standalone`` of the random subnets also trained from scratch (``--scratch-epochs``, once per
  ``--scratch-seeds`` seed): Kendall τ between the supernet's validation accuracy and the stand-alone one (mean
  over seeds; goal ≥ 0.6 on 10 subnets), and the reference's own noise ceiling: τ between the stand-alone
  accuracies of two seeds (no predictor of a single seed's ranking can beat it by more than luck).

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
from _shared import write_results
from scipy.stats import kendalltau

from tailorkit.search.supernet import (
    SupernetConfig,
    accuracy,
    evaluate_arch,
    load_digits_splits,
    train_subnet,
    train_supernet,
)
from tailorkit.spaces import OFAMobileNetV3Space

log = logging.getLogger("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--finetune", type=int, default=1)
    parser.add_argument("--standalone", type=int, default=10)
    parser.add_argument("--scratch-epochs", type=int, default=6)
    parser.add_argument("--scratch-seeds", type=int, default=3)
    parser.add_argument("--stem", default="supernet")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stderr)
    from tailorkit.devices.host import cpu_model

    data = load_digits_splits()
    space = OFAMobileNetV3Space()
    r: dict[str, Any] = {"machine": f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}",
                         "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        net = train_supernet(SupernetConfig(epochs=args.epochs), Path(tmp) / "ckpt", data=data)
        r["train_s"] = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    archs = [("largest", space.largest(224)), ("smallest", space.smallest(128))]
    archs += [(f"random {i}", space.sample(rng)) for i in range(args.subnets)]
    rows = []
    for name, arch in archs:
        val = evaluate_arch(net, data, arch, "val")
        test = evaluate_arch(net, data, arch, "test")
        tuned = train_subnet(net.extract(arch), data, arch.r, epochs=args.finetune, lr=0.01)
        rows.append({"name": name, "arch": arch.to_dict(), "supernet_val": val, "supernet_test": test,
                     "finetuned_test": accuracy(tuned, data, arch.r, "test")})
        log.info("%s: supernet test %.3f, fine-tuned %.3f", name, test, rows[-1]["finetuned_test"])
    for row in rows[2:2 + args.standalone]:
        arch = space.arch_from_dict(row["arch"])
        t0 = time.perf_counter()
        row["standalone_val_seeds"], row["standalone_test_seeds"] = [], []
        for seed in range(args.scratch_seeds):
            torch.manual_seed(seed)
            fresh = OFAMobileNetV3Space(num_classes=10).build(arch)
            model = train_subnet(fresh, data, arch.r, epochs=args.scratch_epochs)
            row["standalone_val_seeds"].append(accuracy(model, data, arch.r, "val"))
            row["standalone_test_seeds"].append(accuracy(model, data, arch.r, "test"))
        row["standalone_val"] = float(np.mean(row["standalone_val_seeds"]))
        row["standalone_test"] = float(np.mean(row["standalone_test_seeds"]))
        row["standalone_s"] = (time.perf_counter() - t0) / args.scratch_seeds
        log.info("%s: stand-alone val %s", row["name"], row["standalone_val_seeds"])
    ranked = [row for row in rows if "standalone_val" in row]
    if len(ranked) >= 3:
        tau = kendalltau([x["supernet_val"] for x in ranked], [x["standalone_val"] for x in ranked])
        r["kendall_tau_val"] = float(tau.statistic)
        r["kendall_tau_test"] = float(kendalltau([x["supernet_test"] for x in ranked],
                                                 [x["standalone_test"] for x in ranked]).statistic)
        pairs = [(a, b) for a in range(args.scratch_seeds) for b in range(a + 1, args.scratch_seeds)]
        for split in ("val", "test") if pairs else ():  # one seed's ranking against another's: the noise ceiling
            seeds = [x[f"standalone_{split}_seeds"] for x in ranked]
            r[f"seed_tau_{split}"] = float(np.mean([kendalltau([s[a] for s in seeds], [s[b] for s in seeds]).statistic
                                                    for a, b in pairs]))
    r["subnets"] = rows
    write_results(args.stem, r, markdown(r) + "\n")


def markdown(r: dict[str, Any]) -> str:
    a = r["args"]
    lines = ["# OFA-MobileNetV3 supernet on digits", "", f"{r['machine']}, {r['date']}", "",
             f"Supernet: {a['epochs']} epochs of progressive shrinking in {r['train_s']:.0f} s. Test accuracy of each "
             f"subnet run by the supernet (BN recalibrated) and after extracting and fine-tuning it for "
             f"{a['finetune']} epoch(s); stand-alone = the same arch trained from scratch for "
             f"{a['scratch_epochs']} epochs, mean over {a.get('scratch_seeds', 1)} seed(s).", ""]
    if "kendall_tau_val" in r:
        lines += [f"Kendall τ, supernet vs stand-alone accuracy on {a['standalone']} subnets: validation "
                  f"{r['kendall_tau_val']:.3f}, test {r['kendall_tau_test']:.3f} (goal ≥ 0.6)", ""]
    if "seed_tau_val" in r:
        lines += [f"Noise ceiling of the reference — Kendall τ between the stand-alone accuracies of two seeds "
                  f"(mean over seed pairs): validation {r['seed_tau_val']:.3f}, test {r['seed_tau_test']:.3f}", ""]
    lines += ["| subnet | r | depths | supernet test | fine-tuned test | stand-alone test (mean; per seed) |",
              "|---|---|---|---|---|---|"]
    for row in r["subnets"]:
        seeds = "/".join(f"{v:.3f}" for v in row.get("standalone_test_seeds", []))
        alone = f"{row['standalone_test']:.3f} ({seeds})" if "standalone_test" in row else ""
        lines.append(f"| {row['name']} | {row['arch']['r']} | {row['arch']['d']} | {row['supernet_test']:.3f} | "
                     f"{row['finetuned_test']:.3f} | {alone} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
