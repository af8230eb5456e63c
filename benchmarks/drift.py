"""How steady is this machine? The same small model profiled back to back for a while: medians over time.

Latency tables compare ops measured minutes apart, so a machine whose speed wanders (a shared or virtualised
host) skews them. This prints and saves the spread: ``benchmarks/results/drift.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np

from tailorkit.core.records import BenchmarkSettings
from tailorkit.profiler.api import profile

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--model", default="ofa-mbv3-min")
    args = parser.parse_args()
    settings = BenchmarkSettings(warmup=5, runs=30)
    samples: list[tuple[float, float]] = []
    t0 = time.time()
    while time.time() - t0 < args.seconds:
        result = profile(args.model, "cpu", settings=settings, resolution=160)
        samples.append((time.time() - t0, result.latency.median))
    medians = np.array([m for _, m in samples])
    base = float(np.median(medians))
    r = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
         "model": args.model, "settings": settings.to_dict(), "samples": samples,
         "median_ms": base, "min_ms": float(medians.min()), "max_ms": float(medians.max()),
         "share_slower_than_10pct": float((medians > 1.1 * base).mean())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(r, indent=1))
    text = "\n".join([
        "# Machine drift", "", f"{r['date']}, {r['cores']} cores: {args.model} at 160 px profiled "
        f"{len(samples)} times over {args.seconds:.0f} s (30 timed runs each)", "",
        f"- median of the medians {base:.3f} ms, min {r['min_ms']:.3f}, max {r['max_ms']:.3f} "
        f"({r['max_ms'] / r['min_ms']:.2f}×)",
        f"- {r['share_slower_than_10pct'] * 100:.0f} % of the profiles were more than 10 % slower than the median"])
    (RESULTS / "drift.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
