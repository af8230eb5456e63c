"""The TVM side of the tvm device: runs inside TVM's own environment (``.venv-tvm``), one JSON request per line on
stdin, one JSON reply per line on stdout.

apache-tvm and litert-torch need incompatible typing-extensions, so TVM cannot live in tailorkit's environment.
This file imports only the standard library, numpy, onnx and tvm, and is started by path (``python -I
tvm_worker.py``), never as part of the tailorkit package. TVM writes its logs to the process's stdout and stderr
from C++; the replies go to a private copy of the original stdout, and fd 1 is pointed at stderr.

Requests (``op``): ``hello``; ``run`` (end-to-end samples); ``profile`` (per-kernel times through the VM's
instrument hook); ``infer`` (outputs for given inputs, to compare with another runtime); ``export`` (a compiled
library). Compiled modules are cached per (model, shapes, target, tuning). A failure is ``{"error": …,
"kind": …}``, never a traceback on the protocol stream.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

PROTOCOL = 1
_BUILD_TIMEOUT_S = 300  # per candidate: MetaSchedule's 30 s default kills builds on a busy 2-core machine
_CACHED_MODELS = 8  # compiled modules kept: a profile compiles once for its end-to-end and per-op runs


class WorkerError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _tvm() -> Any:
    import tvm
    import tvm.relax.frontend.onnx  # noqa: F401 - registers the ONNX frontend

    return tvm


def _target(spec: Any) -> Any:
    tvm = _tvm()
    try:
        target = tvm.target.Target(spec)
    except Exception as exc:  # noqa: BLE001 - TVM raises its own error types for bad targets
        raise WorkerError("target", f"unknown or invalid TVM target {spec!r}: {_first_line(exc)}") from None
    kind = target.kind.name
    if tvm.get_global_func(f"target.build.{kind}", allow_missing=True) is None:
        # the apache-tvm wheel leaves out some code generators (Vulkan: no SPIR-V); say so before TVM's own
        # "Cannot find global function" halfway through a compile
        raise WorkerError("target", f"this TVM build cannot generate code for {kind} (it was built without "
                                    f"target.build.{kind}); build TVM from source with that backend enabled and "
                                    "point the device's python = \"…\" at it")
    if kind in ("cuda", "opencl", "vulkan", "metal", "rocm") and target.host is None:
        target = tvm.target.Target(spec, host="llvm")
    return target


def _device(target: Any) -> Any:
    tvm = _tvm()
    kind = target.kind.name
    dev = tvm.device(kind if kind != "llvm" else "cpu", 0)
    if not dev.exist:
        raise WorkerError("no-device", f"no {kind.upper() if kind == 'cuda' else kind} device on this machine "
                                       f"(tvm.{kind}().exist is False)")
    return dev


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip() and not line.startswith("Traceback"):
            return line.strip()[:300]
    return type(exc).__name__


class Worker:
    def __init__(self) -> None:
        self.compiled: dict[str, tuple[Any, Any, float]] = {}  # key → (executable, target, compile_s)
        self.vms: dict[str, Any] = {}
        self.last_tuned: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------- compile

    def _compile(self, request: dict[str, Any]) -> tuple[Any, Any, Any, float]:
        tvm = _tvm()
        model, shapes = request["model"], {k: [int(d) for d in v] for k, v in request["shapes"].items()}
        tuning = request.get("tuning", "default-schedules")
        with open(model, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        key = json.dumps([digest, shapes, request["target"], tuning], sort_keys=True)
        self.last_tuned = {}
        if key not in self.compiled:
            if len(self.compiled) >= _CACHED_MODELS:  # a table build compiles hundreds of single-op models
                oldest = next(iter(self.compiled))
                self.compiled.pop(oldest)
                self.vms.pop(oldest, None)
            self.compiled[key] = self._build(tvm, model, shapes, request["target"], tuning, request)
        executable, target, compile_s = self.compiled[key]
        if request.get("load", True) and key not in self.vms:
            self.vms[key] = tvm.relax.VirtualMachine(executable, _device(target))
        return executable, self.vms.get(key), target, compile_s

    def _build(self, tvm: Any, model: str, shapes: dict[str, list[int]], spec: Any, tuning: str,
               request: dict[str, Any]) -> tuple[Any, Any, float]:
        import onnx

        target = _target(spec)
        t0 = time.perf_counter()
        try:
            graph = onnx.load(model)
        except Exception as exc:  # noqa: BLE001
            raise WorkerError("model", f"{model!r} is not an ONNX model: {_first_line(exc)}") from None
        converters = tvm.relax.frontend.onnx.onnx_frontend._get_convert_map()
        missing = sorted({node.op_type for node in graph.graph.node} - set(converters))
        if missing:
            raise WorkerError("unsupported-op", f"TVM's ONNX importer has no converter for {', '.join(missing)}")
        try:
            mod = tvm.relax.frontend.onnx.from_onnx(graph, shape_dict=shapes, keep_params_in_input=False)
        except Exception as exc:  # noqa: BLE001 - the importer raises anything from asserts to TVMError
            raise WorkerError("import", f"TVM could not import {Path(model).name}: {_first_line(exc)}") from None
        if tuning == "metaschedule":
            executable = self._tuned(tvm, mod, target, Path(request["tuning_db"]), int(request["trials"]))
            return executable, target, time.perf_counter() - t0
        try:
            # TVM's default pipeline: dlight's rule-based schedules on GPU targets, generic ones on llvm
            executable = tvm.compile(mod, target=target)
        except Exception as exc:  # noqa: BLE001
            raise WorkerError("compile", f"TVM could not compile {Path(model).name} for {target}: "
                                         f"{_first_line(exc)}") from None
        return executable, target, time.perf_counter() - t0

    def _tuned(self, tvm: Any, mod: Any, target: Any, work_dir: Path, trials: int) -> Any:
        """MetaSchedule: the kernels (fused TIR functions) that the database has no record for are tuned with
        ``trials`` trials each, their records appended to the database in ``work_dir``; then the module is
        compiled with the best record of every kernel. A kernel shape is tuned once per database, whatever
        model it appears in."""
        from tvm import relax
        from tvm.relax import pipeline
        from tvm.s_tir import meta_schedule as ms
        from tvm.s_tir.meta_schedule.relax_integration import compile_relax, extract_tasks

        if target.kind.name == "llvm" and "num-cores" not in target.attrs:
            # MetaSchedule refuses llvm targets without a core count; the worker's thread pool is the truth
            config = dict(target.export())
            config["num-cores"] = int(os.environ.get("TVM_NUM_THREADS") or os.cpu_count() or 1)
            target = tvm.target.Target(config)
        elif target.kind.name != "llvm" and "max_threads_per_block" not in target.attrs:
            # MetaSchedule's GPU rules need the thread and shared-memory limits that a plain "cuda" target leaves
            # out: take the ones this GPU reports, keeping every attribute the user's target sets
            detected = dict(tvm.target.Target.from_device(_device(target)).export())
            given = dict(target.export())
            target = tvm.target.Target({**given, **{k: v for k, v in detected.items() if k not in given}})
        work_dir.mkdir(parents=True, exist_ok=True)
        try:
            database = ms.database.JSONDatabase(work_dir=str(work_dir))
        except Exception as exc:  # noqa: BLE001 - a damaged file raises from the JSON reader or the IR loader
            raise WorkerError("tuning-db", f"the MetaSchedule database in {str(work_dir)!r} cannot be read "
                                           f"({_first_line(exc)}); move it away to tune again") from None
        # the same preparation compile_relax applies, so that the database's keys match its kernels
        prepare = tvm.transform.Sequential([*pipeline.library_dispatch_passes(target), relax.transform.LegalizeOps(),
                                            relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
                                            relax.transform.FuseOps(), relax.transform.FuseTIR()])
        with target:
            fused = prepare(mod)
        tasks = extract_tasks(fused, target)
        todo = [t for t in tasks if not database.has_workload(t.dispatched[0])]
        if todo and trials > 0:
            # evolutionary search samples a population of thousands before its first trial: for a few trials,
            # replaying random traces gets there sooner
            strategy = "evolutionary" if trials >= 64 else "replay-trace"
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(todo, str(work_dir),
                                                                                      strategy=strategy, seed=0)
            ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(work_dir),
                               max_trials_global=trials * len(todo), max_trials_per_task=trials,
                               num_trials_per_iter=min(trials, 16), database=database, cost_model="random",
                               builder=ms.builder.LocalBuilder(max_workers=1, timeout_sec=_BUILD_TIMEOUT_S),
                               runner=ms.runner.LocalRunner(timeout_sec=_BUILD_TIMEOUT_S))
        self.last_tuned = {"kernels": len(tasks), "tuned_now": len(todo) if trials > 0 else 0}
        try:
            return compile_relax(database, mod, target, None)
        except Exception as exc:  # noqa: BLE001
            raise WorkerError("compile", f"TVM could not compile with the tuned schedules: "
                                         f"{_first_line(exc)}") from None

    def _inputs(self, target: Any, shapes: dict[str, list[int]]) -> list[Any]:
        import numpy as np

        tvm = _tvm()
        dev = _device(target)
        rng = np.random.default_rng(0)
        return [tvm.runtime.tensor(rng.standard_normal(shape).astype("float32"), dev) for shape in shapes.values()]

    # -------------------------------------------------------------------------------------------- requests

    def hello(self, request: dict[str, Any]) -> dict[str, Any]:
        tvm = _tvm()
        reply: dict[str, Any] = {"protocol": PROTOCOL, "tvm_version": tvm.__version__, "python": sys.version.split()[0],
                                 "num_threads": os.environ.get("TVM_NUM_THREADS", "")}
        if "target" in request:
            target = _target(request["target"])
            reply["target"] = str(target)
            reply["target_kind"] = target.kind.name
            kind = target.kind.name
            dev = tvm.device(kind if kind != "llvm" else "cpu", 0)
            reply["device_exists"] = bool(dev.exist)
            if dev.exist and kind != "llvm":
                reply["device_name"] = str(dev.device_name)
                reply["compute_version"] = str(dev.compute_version)
        return reply

    def _warm(self, request: dict[str, Any]) -> tuple[Any, Any, list[Any], float]:
        """The compiled model's VM, its device and random inputs, after ``warmup`` untimed runs."""
        _, vm, target, compile_s = self._compile(request)
        dev = _device(target)
        args = self._inputs(target, request["shapes"])
        for _ in range(int(request.get("warmup", 10))):
            vm["main"](*args)
        dev.sync()
        return vm, dev, args, compile_s

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        vm, dev, args, compile_s = self._warm(request)
        main = vm["main"]
        number = int(request.get("number", 0))
        if number <= 0:  # the smallest count that makes a sample last min_sample_ms
            t0 = time.perf_counter()
            main(*args)
            dev.sync()
            one_ms = (time.perf_counter() - t0) * 1e3
            number = max(1, math.ceil(float(request.get("min_sample_ms", 3.0)) / max(one_ms, 1e-6)))
        timer = vm.time_evaluator("main", dev, number=number, repeat=int(request.get("runs", 100)))
        result = timer(*args)
        return {"samples_ms": [float(s) * 1e3 for s in result.results], "number": number, "compile_s": compile_s,
                "tuned": self.last_tuned}

    def profile(self, request: dict[str, Any]) -> dict[str, Any]:
        vm, dev, args, compile_s = self._warm(request)
        main = vm["main"]
        runs = int(request.get("runs", 100))
        totals: dict[str, float] = {}
        calls: dict[str, int] = {}
        order: list[str] = []
        started: list[float] = []

        def instrument(func: Any, name: str, before_run: bool, ret_value: Any, *call_args: Any) -> int:
            if name.startswith("vm.builtin."):  # allocation and shape bookkeeping, not kernels
                return 0
            if before_run:
                dev.sync()
                started.append(time.perf_counter())
            else:
                dev.sync()
                elapsed = (time.perf_counter() - started.pop()) * 1e3
                if name not in totals:
                    order.append(name)
                    totals[name] = 0.0
                    calls[name] = 0
                totals[name] += elapsed
                calls[name] += 1
            return 0

        vm.set_instrument(instrument)
        try:
            for _ in range(runs):
                main(*args)
        finally:
            vm.set_instrument(lambda *a: 0)
        return {"kernels": [{"name": name, "ms_per_run": totals[name] / runs, "calls_per_run": calls[name] / runs}
                            for name in order], "runs": runs, "compile_s": compile_s}

    def infer(self, request: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        tvm = _tvm()
        _, vm, target, _ = self._compile(request)
        dev = _device(target)
        arrays = [np.load(path) for path in request["inputs"]]
        # rows=True: the compiled model takes batch 1 and each file holds N inputs, run one by one
        batches = zip(*[[a[i:i + 1] for i in range(len(a))] for a in arrays], strict=True) if request.get("rows") \
            else [arrays]
        results: list[list[Any]] = []
        for batch in batches:
            out = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(a), dev) for a in batch])
            values = out if isinstance(out, (list, tuple)) or type(out).__name__ == "Array" else [out]
            results.append([value.numpy() for value in values])
        paths = []
        for i in range(len(results[0])):
            path = f"{request['output_prefix']}{i}.npy"
            np.save(path, np.concatenate([r[i] for r in results]))
            paths.append(path)
        return {"outputs": paths}

    def export(self, request: dict[str, Any]) -> dict[str, Any]:
        executable, _, target, compile_s = self._compile({**request, "load": False})
        out = Path(request["output"])
        tmp = out.with_name(f".{out.name}.tmp.so")
        try:
            executable.export_library(str(tmp))
        except Exception as exc:  # noqa: BLE001
            tmp.unlink(missing_ok=True)
            raise WorkerError("export", f"TVM could not export the library: {_first_line(exc)}") from None
        tmp.replace(out)
        return {"output": str(out), "target": str(target), "compile_s": compile_s, "bytes": out.stat().st_size}


def main() -> int:
    # this file sits beside devices/tvm.py: with its folder on sys.path (python without -I), `import tvm` would
    # find that module instead of TVM
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # TVM's C++ logging and any print() go to stderr, never into the replies
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            handler = getattr(worker, request.get("op", ""), None)
            if handler is None or request["op"].startswith("_"):
                raise WorkerError("protocol", f"unknown request {request.get('op')!r}")
            reply = handler(request)
        except WorkerError as exc:
            reply = {"error": str(exc), "kind": exc.kind}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, with the trace on stderr
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {_first_line(exc)}", "kind": "internal"}
        protocol.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
