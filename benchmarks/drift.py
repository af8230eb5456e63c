"""How steady is this machine, and how steady is a measurement against a speed reference?

- ``plain``: the same small model profiled back to back for a while: its medians over time. Latency tables
  compare ops measured minutes apart, so a machine whose speed wanders (a shared or virtualised host) skews them.
- ``paired``: a mid-size OFA-MBv3 subnet measured in alternation with the smallest one (``profile_paired``, as
  `tailor search --device` and `tailor export --device` do with a calibrated predictor), back to back for a
  while: the spread of the ratio against the spread of each model's own latency, and the wall time per
  measurement.

Prints and saves ``benchmarks/results/drift.{json,md}`` (a section not run keeps its last results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.records import BenchmarkSettings
from tailorkit.profiler.api import profile, profile_paired

RESULTS = Path(__file__).resolve().parent / "results"


def spread(x: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max()),
            "p90_over_p10": float(np.percentile(x, 90) / np.percentile(x, 10))}


def bench_plain(seconds: float, model: str) -> dict[str, Any]:
    settings = BenchmarkSettings(warmup=5, runs=30)
    samples: list[tuple[float, float]] = []
    t0 = time.time()
    while time.time() - t0 < seconds:
        result = profile(model, "cpu", settings=settings, resolution=160)
        samples.append((time.time() - t0, result.latency.median))
    medians = np.array([m for _, m in samples])
    base = float(np.median(medians))
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "model": model, "seconds": seconds,
            "settings": settings.to_dict(), "samples": samples, "median_ms": base, "min_ms": float(medians.min()),
            "max_ms": float(medians.max()), "share_slower_than_10pct": float((medians > 1.1 * base).mean())}


def bench_paired(seconds: float) -> dict[str, Any]:
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=1.2)
    target = space.sample(np.random.default_rng(0), 160)
    reference = space.smallest(160)
    rows = []
    t0 = time.time()
    while time.time() - t0 < seconds:
        start = time.perf_counter()
        lat = profile_paired(space.build(target), space.build(reference), "cpu",
                             input_shapes={"input": space.input_shape(target)},
                             reference_shapes={"input": space.input_shape(reference)}).latency
        rows.append({"t": time.time() - t0, "wall_s": time.perf_counter() - start, "ratio": lat.ratio,
                     "ratio_spread": lat.ratio_spread, "target_ms": lat.target.median,
                     "reference_ms": lat.reference.median, "pairs": lat.pairs,
                     "timed_s": (sum(lat.target.samples) + sum(lat.reference.samples)) / 1e3})
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "seconds": seconds,
            "target": space.arch_to_dict(target), "reference": space.arch_to_dict(reference), "rows": rows,
            "ratio": spread(col["ratio"]), "target_ms": spread(col["target_ms"]),
            "reference_ms": spread(col["reference_ms"]), "wall_s": float(np.median(col["wall_s"])),
            "timed_share": float(np.median(col["timed_s"] / col["wall_s"])),
            "ratio_spread_within": float(np.median(col["ratio_spread"]))}


def write(report: dict[str, Any]) -> str:
    lines = ["# Machine drift", ""]
    if "plain" in report:
        r = report["plain"]
        lines += ["## One model back to back", "",
                  f"{r['date']}, {report['cores']} cores: {r['model']} at 160 px profiled {len(r['samples'])} times "
                  f"over {r['seconds']:.0f} s (30 timed runs each)", "",
                  f"- median of the medians {r['median_ms']:.3f} ms, min {r['min_ms']:.3f}, max {r['max_ms']:.3f} "
                  f"({r['max_ms'] / r['min_ms']:.2f}×)",
                  f"- {r['share_slower_than_10pct'] * 100:.0f} % of the profiles were more than 10 % slower than the "
                  "median", ""]
    if "paired" in report:
        r = report["paired"]
        n = len(r["rows"])
        lines += ["## Against a speed reference", "",
                  f"{r['date']}: a random OFA-MBv3 w1.2 subnet at 160 px measured {n} times over "
                  f"{r['seconds']:.0f} s in alternation with the smallest subnet (`profile_paired`: ~30 ms blocks, "
                  f"{r['rows'][0]['pairs']} pairs).", "",
                  "| | median | min | max | p90 / p10 |", "|---|---|---|---|---|"]
        for key, name in (("ratio", "ratio subnet / reference"), ("target_ms", "subnet ms (own median)"),
                          ("reference_ms", "reference ms (own median)")):
            s = r[key]
            lines.append(f"| {name} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} | {s['p90_over_p10']:.3f} |")
        within = 100 * r["ratio_spread_within"]
        lines += ["", f"- within one measurement the pair ratios' interquartile range is {within:.1f} % of the ratio "
                      "(median over measurements)",
                  f"- one measurement takes {r['wall_s']:.1f} s (both models exported to ONNX, two sessions, warm-up, "
                  f"32 pairs), {100 * r['timed_share']:.0f} % of it in timed runs", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="plain,paired")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--model", default="ofa-mbv3-min")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    old = RESULTS / "drift.json"
    report: dict[str, Any] = {}
    if old.is_file():
        previous = json.loads(old.read_text())
        # results from before the sections existed are the plain section
        report = previous if "plain" in previous or "paired" in previous else {"plain": {**previous,
                                                                                          "seconds": 120.0}}
    report["cores"] = os.cpu_count()
    if "plain" in sections:
        report["plain"] = bench_plain(args.seconds, args.model)
    if "paired" in sections:
        report["paired"] = bench_paired(args.seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(report, indent=1))
    text = write(report)
    (RESULTS / "drift.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
