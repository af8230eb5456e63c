"""Profiling overhead of building an OFA-MobileNetV3 lookup table on the CPU (ONNX Runtime).

What is measured:

* **Table build** - ``tailorkit.profiler.api.build_table`` measures every distinct op of the space at
  one resolution into a fresh SQLite store. Its report splits the wall time into exporting (torch -> ONNX),
  measuring (session set-up, warm-up and timed runs) and the rest (store writes, bookkeeping).
* **Overhead** - the share of the wall time *not* spent inside timed runs:
  ``1 - Σ(timed run time) / wall time`` (``TableBuildReport.overhead``). Σ(timed run time) counts every
  timed sample, including the ones the outlier rule later drops, times the inferences per sample.
* **Stability** - the coefficient of variation (std / mean) of every table entry, and the run-to-run spread
  ``(max - min) / mean`` of the medians of three end-to-end profiles of the largest subnet.
* **LUT sum vs whole model** - the sum of the table's means over the largest subnet's ops against the
  measured end-to-end median, and (width 1.2 only) the ratio of our CPU means to OFA's published Note10 table.

Results go to ``benchmarks/results/profiling_overhead.{json,md}``
(with ``--quick``: ``profiling_overhead.quick.*``, a smoke test whose numbers mean little).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailorkit.core.config import load_config
from tailorkit.core.table import LatencyTable
from tailorkit.profiler.api import build_table, profile
from tailorkit.profiler.store import TableStore
from tailorkit.profiler.tables import TableProgress
from tailorkit.spaces import OFAMobileNetV3Space

HERE = Path(__file__).resolve().parent
NOTE10_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa_proxyless_luts" / "note10"
GROUPS = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")
TARGETS = {"overhead_pct": 15.0, "median_cv_pct": 3.0, "table_224_wall_s": 600.0}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def op_type(key: str) -> str:
    return key.split("-", 1)[0]


class Progress:
    """Logs one line every ``every`` ops and keeps per-op-type wall and timed time (between callbacks)."""

    def __init__(self, every: int = 10) -> None:
        self.every, self.last = every, time.perf_counter()
        self.groups: dict[str, dict[str, float]] = defaultdict(
            lambda: {"ops": 0, "wall_s": 0.0, "timed_s": 0.0})

    def __call__(self, p: TableProgress) -> None:
        now = time.perf_counter()
        if p.key is None:
            log(f"table {p.table}: {p.total} ops ({p.already} already measured)")
        elif p.latency is not None:
            lat = p.latency
            g = self.groups[op_type(p.key)]
            g["ops"] += 1
            g["wall_s"] += now - self.last
            g["timed_s"] += (sum(lat.samples) if lat.samples else lat.mean * lat.n) * lat.number / 1000.0
            if p.done % self.every == 0 or p.done == p.total - p.already:
                log(f"{p.done}/{p.total - p.already} {p.key}: {lat.mean:.3f} ms (cv {lat.cv * 100:.1f}%)")
        self.last = now

    def breakdown(self) -> dict[str, dict[str, float]]:
        order = sorted(self.groups.items(), key=lambda kv: GROUPS.index(kv[0]) if kv[0] in GROUPS else 99)
        return {k: {**v, "overhead_pct": 100 * (1 - v["timed_s"] / v["wall_s"]) if v["wall_s"] else 0.0}
                for k, v in order}


def quantiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"min": float(a.min()), "p10": float(np.percentile(a, 10)), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": float(a.max())}


def compare_note10(ours: LatencyTable, resolution: int, width: float) -> dict[str, Any]:
    path = NOTE10_DIR / f"{resolution}_lookup_table.yaml"
    if width != 1.2 or not path.is_file():
        why = "width is not 1.2" if width != 1.2 else f"{path} not found"
        return {"available": False, "reason": why}
    note10 = LatencyTable.read(path)
    only_ours, only_note10 = sorted(set(ours) - set(note10)), sorted(set(note10) - set(ours))
    common = sorted(set(ours) & set(note10))
    ratios = {k: ours[k].mean / note10[k].mean for k in common if note10[k].mean > 0}
    by_group: dict[str, list[float]] = defaultdict(list)
    for k, r in ratios.items():
        by_group[op_type(k)].append(r)
    return {"available": True, "path": str(path), "keys_identical": not only_ours and not only_note10,
            "only_ours": only_ours, "only_note10": only_note10, "common": len(common),
            "ratio": {"min": min(ratios.values()), "median": float(np.median(list(ratios.values()))),
                      "max": max(ratios.values())},
            "group_median_ratio": {g: float(np.median(by_group[g])) for g in GROUPS if by_group[g]}}


def markdown(r: dict[str, Any]) -> str:
    b, cv, m, t = r["build"], r["cv_pct"], r["whole_model"], r["targets"]
    yes = {True: "pass", False: "FAIL", None: "n/a"}
    rows = [
        ("Table", f"{b['table']} ({b['total']} ops)"),
        ("Wall time", f"{b['wall_s']:.1f} s"),
        ("Export time", f"{b['export_s']:.1f} s"),
        ("Measuring time", f"{b['measure_s']:.1f} s"),
        ("Σ timed runs", f"{b['timed_ms'] / 1000:.1f} s"),
        ("Overhead", f"{b['overhead_pct']:.1f} % ({yes[t['overhead_le_15pct']]})"),
        ("CV min/p10/median/p90/max",
         " / ".join(f"{cv[k]:.2f}" for k in ("min", "p10", "median", "p90", "max"))
         + f" % (median {yes[t['median_cv_le_3pct']]})"),
        ("Entries with CV <= 3 %", f"{cv['share_le_3pct'] * 100:.1f} %"),
        (f"{m['model']} medians", ", ".join(f"{x:.2f}" for x in m["medians_ms"]) + " ms"),
        ("Run-to-run spread", f"{m['spread_pct']:.2f} %"),
        ("LUT sum vs measured",
         f"{m['lut_sum_ms']:.2f} vs {m['measured_median_ms']:.2f} ms ({m['lut_error_pct']:+.1f} %)"),
        ("Full 224 table < 10 min", f"{yes[t['table_224_under_10min']]}"),
    ]
    n10 = r["note10"]
    if n10["available"]:
        rows += [("Keys identical to Note10", str(n10["keys_identical"])),
                 ("CPU/Note10 ratio min/median/max", " / ".join(f"{n10['ratio'][k]:.2f}"
                                                                for k in ("min", "median", "max"))),
                 ("Median ratio per group",
                  ", ".join(f"{g} {v:.2f}" for g, v in n10["group_median_ratio"].items()))]
    else:
        rows.append(("Note10 comparison", f"skipped ({n10['reason']})"))
    mach, s = r["machine"], r["settings"]
    machine = (f"{mach['cpu']}, {mach['logical_cores']} logical cores, onnxruntime {mach['onnxruntime']}, "
               f"torch {mach['torch']}, {mach['date']}")
    setup = (f"Settings: width {r['width']:g}, resolution {r['resolution']}, warmup {s['warmup']}, "
             f"runs {s['runs']}, threads {s['threads']}, outlier {s['outlier']}")
    lines = [f"# Profiling overhead{' (quick smoke run)' if r['quick'] else ''}", "", machine, "", setup, "",
             "| Metric | Value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "| Op type | Ops | Wall s | Timed s | Overhead % |", "|---|---|---|---|---|"]
    lines += [f"| {g} | {v['ops']:.0f} | {v['wall_s']:.1f} | {v['timed_s']:.1f} | {v['overhead_pct']:.1f} |"
              for g, v in b["per_op_type"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="ofa-mbv3")
    ap.add_argument("--width", type=float, default=1.2)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--runs", type=int, default=None, help="timed samples per op (default: config / 100)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs per op (default: config / 10)")
    ap.add_argument("--quick", action="store_true", help="resolution 128, 10 runs: smoke test only")
    args = ap.parse_args(argv)
    if args.quick:
        args.resolution, args.runs = 128, 10
    config = load_config()
    settings = config.settings("cpu", runs=args.runs, warmup=args.warmup)
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="tailor-bench-") as tmp, \
            TableStore(f"sqlite:///{tmp}/bench.db") as db:
        report = build_table(args.space, "cpu", resolution=args.resolution, width=args.width, store=db,
                             settings=settings, config=config, progress=progress)
        table = db.table(report.table)
    log(f"table built in {report.wall_s:.1f} s, overhead {report.overhead * 100:.1f} %")

    cvs = [lat.cv * 100 for lat in table.entries.values()]
    cv = {**quantiles(cvs), "share_le_3pct": sum(c <= 3.0 for c in cvs) / len(cvs)}

    model = "ofa-mbv3-w1.2-max" if args.width == 1.2 else "ofa-mbv3-max"
    medians = []
    for i in range(3):
        prof = profile(model, "cpu", settings=settings, resolution=args.resolution, config=config)
        medians.append(float(prof.latency.median if prof.latency.median is not None else prof.latency.mean))
        log(f"{prof.model} run {i + 1}/3: median {medians[-1]:.2f} ms")
    space = OFAMobileNetV3Space(width=args.width)
    lut_sum = sum(table[op.key].mean for op in space.ops(space.largest(args.resolution)))
    measured = float(np.median(medians))
    whole = {"model": model, "medians_ms": medians,
             "spread_pct": 100 * (max(medians) - min(medians)) / float(np.mean(medians)),
             "lut_sum_ms": lut_sum, "measured_median_ms": measured,
             "lut_error_pct": 100 * (lut_sum - measured) / measured}

    overhead_pct = report.overhead * 100
    result: dict[str, Any] = {
        "quick": args.quick, "space": args.space, "width": args.width, "resolution": args.resolution,
        "settings": settings.to_dict(), "settings_fingerprint": settings.fingerprint,
        "machine": {"cpu": report.device.hardware, "logical_cores": os.cpu_count(),
                    "device_properties": dict(report.device.properties),
                    "device_state": dict(report.device.state),
                    "onnxruntime": report.device.runtime_version, "torch": torch.__version__,
                    "tailorkit": report.device.tailorkit_version, "python": sys.version.split()[0],
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "build": {"table": report.table, "total": report.total, "measured": report.measured,
                  "wall_s": report.wall_s, "export_s": report.export_s, "measure_s": report.measure_s,
                  "other_s": report.wall_s - report.export_s - report.measure_s, "timed_ms": report.timed_ms,
                  "overhead_pct": overhead_pct, "per_op_type": progress.breakdown()},
        "cv_pct": cv, "whole_model": whole, "note10": compare_note10(table, args.resolution, args.width),
        "targets": {"overhead_le_15pct": overhead_pct <= TARGETS["overhead_pct"],
                    "median_cv_le_3pct": cv["median"] <= TARGETS["median_cv_pct"],
                    "table_224_under_10min": (report.wall_s < TARGETS["table_224_wall_s"]
                                              if args.resolution == 224 else None),
                    "table_224_cores": os.cpu_count()},
    }
    stem = "profiling_overhead.quick" if args.quick else "profiling_overhead"
    out = HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md = markdown(result)
    (out / f"{stem}.md").write_text(md, encoding="utf-8")
    log(f"wrote {out / stem}.json and .md")
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
