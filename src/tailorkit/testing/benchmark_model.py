"""A host stand-in for TFLite's ``benchmark_model``: same flags, same console format, real LiteRT runs.

It runs the ``.tflite`` with ai-edge-litert's interpreter on this machine, so the Android path (config → connect
→ push → run → parse → store) can run end to end against the loopback ADB peer without a phone. What it prints
follows the real tool's layout (``STARTING!``, ``Initialized session in …ms.``, one ``count= first= curr= min=
max= avg= std=`` line for the warm-up and one for the timed runs, ``Inference timings in us: …``), with the
newer builds' ``INFO:`` prefix. It has no per-op profiler: ``--enable_op_profiling=true`` prints a note and no
per-op tables, so per-op TFLite rows come only from real phones (and the parser's fixtures).

Run ``python -m tailorkit.testing.benchmark_model --write-launcher PATH`` to write an executable that calls it
with this interpreter; that file is what a loopback device's ``benchmark_binary`` points to.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_FLAGS: dict[str, str] = {  # name → default, as the real tool documents them
    "graph": "", "num_threads": "-1", "warmup_runs": "1", "warmup_min_secs": "0.5", "num_runs": "50",
    "min_secs": "1", "max_secs": "150", "run_delay": "-1", "enable_op_profiling": "false", "use_xnnpack": "true",
    "use_gpu": "false", "use_nnapi": "false", "verbose": "false",
}
_TRUE = ("true", "1", "yes")


def _say(line: str) -> None:
    sys.stdout.write(f"INFO: {line}\n")


def _fail(line: str) -> int:
    sys.stdout.write(f"ERROR: {line}\n")
    sys.stdout.flush()
    return 1


def _parse(argv: Sequence[str]) -> dict[str, str] | str:
    values = dict(_FLAGS)
    for arg in argv:
        name, sep, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or not sep or name not in _FLAGS:
            return arg
        values[name] = value
    return values


def _stats(samples_us: list[float]) -> str:
    """One ``count=`` line as the real tool writes it: integer microseconds, ``avg`` with six significant
    digits, and the population standard deviation."""
    arr = np.asarray(samples_us)
    return (f"count={arr.size} first={int(arr[0])} curr={int(arr[-1])} min={int(arr.min())} max={int(arr.max())} "
            f"avg={arr.mean():g} std={int(arr.std())}")


def _run_phase(invoke: object, at_least_runs: int, at_least_secs: float, max_secs: float,
               delay_s: float) -> list[float]:
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        enough = len(samples) >= at_least_runs and elapsed >= at_least_secs
        if (enough and samples) or (elapsed > max_secs and samples):
            return samples
        t0 = time.perf_counter()
        invoke()  # type: ignore[operator]
        samples.append((time.perf_counter() - t0) * 1e6)
        if delay_s > 0:
            time.sleep(delay_s)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--write-launcher"] and len(argv) == 2:
        print(write_launcher(Path(argv[1])))
        return 0
    flags = _parse(argv)
    _say("STARTING!")
    if isinstance(flags, str):
        return _fail(f"Unconsumed cmdline flags: {flags}")
    if flags["use_gpu"] in _TRUE or flags["use_nnapi"] in _TRUE:
        return _fail("the host runner has no GPU or NNAPI delegate (they exist only on a phone)")
    graph = flags["graph"]
    _say(f"Num threads: [{flags['num_threads']}]")
    _say(f"Graph: [{graph}]")
    _say(f"Enable op profiling: [{int(flags['enable_op_profiling'] in _TRUE)}]")
    if not graph or not Path(graph).is_file():
        return _fail(f"Failed to load model {graph}: no such file")
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as exc:
        return _fail(f"the host runner needs ai-edge-litert: {exc}")
    t_init = time.perf_counter()
    threads = int(flags["num_threads"])
    xnnpack = flags["use_xnnpack"] in _TRUE
    try:
        resolver = (litert.OpResolverType.AUTO if xnnpack
                    else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp = litert.Interpreter(model_path=graph, num_threads=threads if threads > 0 else None,
                                    experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        return _fail(f"Failed to load model {graph}: {exc}")
    _say(f"Loaded model {graph}")
    _say(f"The input model file size (MB): {os.path.getsize(graph) / 1e6:g}")
    rng = np.random.default_rng(0)
    for detail in interp.get_input_details():
        dtype = np.dtype(detail["dtype"])
        data = (rng.standard_normal(detail["shape"]) if dtype.kind == "f"
                else rng.integers(-8, 8, detail["shape"]))
        interp.set_tensor(detail["index"], data.astype(dtype))
    init_us = (time.perf_counter() - t_init) * 1e6
    _say(f"Initialized session in {init_us / 1e3:g}ms.")
    max_secs = float(flags["max_secs"])
    delay = float(flags["run_delay"])
    phases = []
    for runs, secs in ((int(flags["warmup_runs"]), float(flags["warmup_min_secs"])),
                       (int(flags["num_runs"]), float(flags["min_secs"]))):
        _say(f"Running benchmark for at least {runs} iterations and at least {secs:g} seconds but terminate if "
             f"exceeding {max_secs:g} seconds.")
        try:
            samples = _run_phase(interp.invoke, runs, secs, max_secs, delay)
        except (ValueError, RuntimeError) as exc:
            return _fail(f"Failed to invoke: {exc}")
        sys.stdout.write(f"INFO: {_stats(samples)}\n\n")
        phases.append(samples)
    warmup, regular = phases
    _say(f"Inference timings in us: Init: {init_us:g}, First inference: {warmup[0]:g}, Warmup (avg): "
         f"{float(np.mean(warmup)):g}, Inference (avg): {float(np.mean(regular)):g}")
    if flags["enable_op_profiling"] in _TRUE:
        _say("Op profiling is not available in tailorkit's host runner (LiteRT's Python interpreter has no "
             "profiler); per-op tables come from benchmark_model on a phone.")
    sys.stdout.flush()
    return 0


def write_launcher(path: Path) -> Path:
    """An executable file that runs this module with the current interpreter (what gets pushed to the loopback
    device as its ``benchmark_model``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport sys\nfrom tailorkit.testing.benchmark_model import main\n"
                    "sys.exit(main())\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


if __name__ == "__main__":
    sys.exit(main())
