"""What the ADB path costs per measurement, against the loopback ADB peer → results/adb_overhead.md|json.

The Android device (``tailorkit.devices.android``) talks real ADB (adb-shell) to ``tailorkit.testing.adb_peer``
on 127.0.0.1, which runs tailorkit's host ``benchmark_model`` (real LiteRT runs). For each model:

* **Round trips** - pushes and shell commands the peer saw per profiled model (goal: one push per model, one
  shell per benchmark), and the bytes pushed.
* **Fixed overhead** - the wall time of ``AndroidDevice.run_model`` minus the wall time of the very same
  benchmark command run directly on this host (same binary, same flags, no ADB): connection, push, the shell
  wrapper (cool-down check, state readings, sentinel) and parsing. Reported in ms and as a share of the
  benchmark's own timed runs (count × avg that the tool printed).
* **Null benchmark** - ``run_model`` with a ``benchmark_model`` that only prints a valid result (a shell script):
  the fixed cost of one measurement with nothing to measure (shell round trip, the cool-down check and state
  readings on the device, ``taskset``, sentinel, parsing); and a bare ``true`` shell for the round trip alone.
  These are steadier than the per-model differences above, which subtract two noisy wall times.
* **Session costs** - connect + set-up shell + binary push (first measurement only) and the clean-up shell.

Loopback has no USB or Wi-Fi latency: on a phone each round trip adds its link's latency, which is why round
trips are counted separately from milliseconds.

    .venv/bin/python benchmarks/adb_overhead.py            # 5 models x 5 repeats, 30 null measurements
    .venv/bin/python benchmarks/adb_overhead.py --quick    # 2 models x 1 repeat: smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _shared import write_results

from tailorkit.core.records import BenchmarkSettings, OpSpec
from tailorkit.devices.android import AndroidDevice
from tailorkit.export.tflite import TfliteExporter
from tailorkit.profiler.tables import export_op
from tailorkit.spaces.ofa_mbv3 import OFAMobileNetV3Space
from tailorkit.testing.adb_peer import LoopbackAdbPeer
from tailorkit.testing.benchmark_model import write_launcher


def _models(workdir: Path, quick: bool) -> list[tuple[str, Path]]:
    ops = [OpSpec("expanded_conv", (20, 20, 48), (20, 20, 48), expand=144, kernel=3, stride=1, activation="relu",
                  idskip=True),
           OpSpec("expanded_conv", (40, 40, 32), (20, 20, 48), expand=192, kernel=7, stride=2, activation="hswish",
                  se=True)]
    models = [(f"op {op.op_type} k{op.kernel} {op.input_shape[0]}px", export_op(op, workdir / f"op{i}", "tflite"))
              for i, op in enumerate(ops)]
    if quick:
        return models
    space = OFAMobileNetV3Space(width=1.0)
    for which, resolution in (("smallest", 128), ("smallest", 224), ("largest", 224)):
        arch = getattr(space, which)(resolution)
        torch.manual_seed(0)
        path = workdir / f"{which}{resolution}.tflite"
        TfliteExporter().export(space.build(arch).eval(), torch.randn(*space.input_shape(arch)), path)
        models.append((f"OFA-MBv3 {which} @{resolution}", path))
    return models


def _direct_wall_ms(launcher: Path, model: Path, settings: BenchmarkSettings) -> float:
    args = [str(launcher), f"--graph={model}", f"--num_threads={settings.threads}",
            f"--warmup_runs={settings.warmup}", "--warmup_min_secs=0", f"--num_runs={settings.runs}", "--min_secs=0",
            "--use_xnnpack=true"]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    return (time.perf_counter() - t0) * 1e3


_NULL_BENCHMARK = """#!/bin/sh
echo "INFO: STARTING!"
echo "INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=1 first=1 curr=1 min=1 max=1 avg=1 std=0"
echo "INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=1 first=1 curr=1 min=1 max=1 avg=1 std=0"
"""


def _fixed_costs(peer: LoopbackAdbPeer, tmp: Path, model: Path, n: int) -> dict[str, float]:
    null = tmp / "null_benchmark_model"
    null.write_text(_NULL_BENCHMARK)
    null.chmod(0o755)
    device = AndroidDevice("null", host=peer.host, port=peer.port, benchmark_binary=str(null),
                           adb_key=str(tmp / "adbkey"))
    settings = BenchmarkSettings(warmup=1, runs=1)
    with device:
        device.run_model(model, settings)  # pushes
        walls, shells = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            device.run_model(model, settings)
            walls.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            device.connection.shell("true")
            shells.append((time.perf_counter() - t0) * 1e3)
    return {"null_measurement_ms": float(np.median(walls)), "null_measurement_p90_ms": float(np.percentile(walls, 90)),
            "shell_round_trip_ms": float(np.median(shells)), "n": n}


def run(quick: bool) -> dict[str, Any]:
    settings = BenchmarkSettings(warmup=3, runs=20 if not quick else 5, threads=1, timeout_s=600)
    repeats = 1 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory(prefix="adb-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        launcher = write_launcher(tmp / "benchmark_model")
        models = _models(tmp / "models", quick)
        from adb_shell.auth.keygen import keygen

        keygen(str(tmp / "adbkey"))
        with LoopbackAdbPeer(tmp / "phone") as peer:
            device = AndroidDevice("loopback", host=peer.host, port=peer.port, benchmark_binary=str(launcher),
                                   adb_key=str(tmp / "adbkey"))
            t0 = time.perf_counter()
            device.connect()
            session_ms = (time.perf_counter() - t0) * 1e3
            session_stats = peer.stats
            for label, path in models:
                for repeat in range(repeats):
                    peer.reset_stats()
                    t0 = time.perf_counter()
                    latency = device.run_model(path, settings)
                    wall_ms = (time.perf_counter() - t0) * 1e3
                    stats = peer.stats
                    direct_ms = _direct_wall_ms(launcher, path, settings)
                    timed_ms = latency.mean * latency.n
                    rows.append({
                        "model": label, "repeat": repeat, "size_kb": path.stat().st_size / 1024,
                        "pushes": len(stats.pushes), "shells": len(stats.shell_commands),
                        "bytes_pushed": sum(n for _, n in stats.pushes),
                        "messages": stats.messages_from_client + stats.messages_to_client,
                        "wall_ms": wall_ms, "direct_ms": direct_ms, "overhead_ms": wall_ms - direct_ms,
                        "timed_ms": timed_ms, "latency_ms": latency.mean,
                    })
            peer.reset_stats()
            t0 = time.perf_counter()
            device.close()
            close_ms = (time.perf_counter() - t0) * 1e3
            close_shells = len(peer.stats.shell_commands)
            fixed = _fixed_costs(peer, tmp, models[0][1], 5 if quick else 30)
    return {
        "fixed": fixed,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": platform.processor() or
        platform.machine(), "settings": settings.to_dict(), "repeats": repeats, "rows": rows,
        "session": {"connect_and_setup_ms": session_ms, "setup_shells": len(session_stats.shell_commands),
                    "setup_pushes": len(session_stats.pushes), "close_ms": close_ms, "close_shells": close_shells},
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# ADB overhead (loopback peer, host benchmark runner)", "",
             f"{report['when']}, {report['machine']}; {report['settings']['warmup']} warm-up + "
             f"{report['settings']['runs']} timed runs per measurement, 1 thread; {report['repeats']} repeat(s) per "
             "model (the first pushes the model).", "",
             "| model | size KB | repeat | pushes | shells | bytes pushed | ADB messages | run_model ms | direct ms | "
             "overhead ms | overhead / timed runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['size_kb']:.0f} | {r['repeat']} | {r['pushes']} | {r['shells']} | "
                     f"{r['bytes_pushed']} | {r['messages']} | {r['wall_ms']:.0f} | {r['direct_ms']:.0f} | "
                     f"{r['overhead_ms']:.0f} | {r['overhead_ms'] / r['timed_ms'] * 100:.1f} % |")
    later = [r["overhead_ms"] for r in report["rows"] if r["repeat"] > 0] or [r["overhead_ms"] for r in report["rows"]]
    first = [r["overhead_ms"] for r in report["rows"] if r["repeat"] == 0]
    s = report["session"]
    lines += ["", f"- Session: connect + set-up {s['connect_and_setup_ms']:.0f} ms ({s['setup_shells']} shell, "
                  f"{s['setup_pushes']} push of the binary); clean-up {s['close_ms']:.0f} ms ({s['close_shells']} "
                  "shell).",
              f"- Overhead per measurement: median {np.median(later):.0f} ms once the model is on the phone, "
              f"{np.median(first):.0f} ms with its push.",
              f"- Null benchmark (a binary that only prints a result), median of {report['fixed']['n']}: "
              f"{report['fixed']['null_measurement_ms']:.1f} ms per measurement (p90 "
              f"{report['fixed']['null_measurement_p90_ms']:.1f} ms); a bare `true` shell: "
              f"{report['fixed']['shell_round_trip_ms']:.1f} ms.",
              "- Goal: 1 push per model, 1 shell per benchmark: "
              + ("met" if all(r["shells"] == 1 and r["pushes"] == (1 if r["repeat"] == 0 else 0)
                             for r in report["rows"]) else "NOT met") + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two single-op models, one repeat (smoke test)")
    args = parser.parse_args()
    report = run(args.quick)
    write_results("adb_overhead.quick" if args.quick else "adb_overhead", report, _markdown(report))


if __name__ == "__main__":
    main()
