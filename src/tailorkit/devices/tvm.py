"""TVM targets (llvm CPUs, CUDA, OpenCL, Vulkan) measured through a worker process in TVM's own environment.

apache-tvm needs typing-extensions >= 4.13 and litert-torch (the TFLite exporter) < 4.13, so TVM lives in a second
virtual environment (``.venv-tvm``, made by ``make setup``) and this adapter talks to ``tvm_worker.py`` running
there: one JSON request and reply per line over its stdin/stdout. Paths go in, samples come out; nothing is
pickled. Models are ONNX files, imported with TVM's Relax ONNX frontend and compiled with ``tvm.compile``.
Untuned builds are far from deployment numbers (an untuned llvm conv2d ran ~60x slower than ONNX Runtime here),
so the device's properties say ``tuning`` and tables built with it carry that in their fingerprint.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError, DeviceError, MissingDependencyError, ModelFormatError
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency
from tailorkit.core.version import __version__
from tailorkit.devices import host
from tailorkit.devices.base import Device
from tailorkit.export.shapes import onnx_input_shapes, resolve_input_shapes

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("tvm_worker.py")
TUNINGS = ("default-schedules", "metaschedule")
_ENV_VAR = "TAILOR_TVM_PYTHON"
_INSTALL_HINT = ("create TVM's environment with `make setup` (it makes .venv-tvm), or by hand: python3 -m venv "
                 ".venv-tvm && .venv-tvm/bin/pip install 'apache-tvm==0.27.0.post1' onnx numpy; or point "
                 f"python = \"…\" in the device's section (or ${_ENV_VAR}) at a Python that has apache-tvm")


def default_tvm_python() -> Path:
    """``$TAILOR_TVM_PYTHON``, else ``.venv-tvm`` in the working directory, else in the source checkout."""
    if os.environ.get(_ENV_VAR):
        return Path(os.environ[_ENV_VAR])
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = root / ".venv-tvm" / "bin" / "python"
        if candidate.exists():
            return candidate
    return Path.cwd() / ".venv-tvm" / "bin" / "python"


class _WorkerProcess:
    """The worker, started on first use; its stderr is kept (bounded) for error messages."""

    def __init__(self, python: Path, threads: int) -> None:
        if not python.exists():
            raise MissingDependencyError(f"the tvm device needs TVM's Python environment ({python} is missing): "
                                         f"{_INSTALL_HINT}")
        # PYTHONSAFEPATH: MetaSchedule's builder and runner processes (``python -m tvm.exec.popen_worker``) would
        # otherwise put the working directory first on sys.path, and a tvm.py there (benchmarks/ has one)
        # shadows TVM: every trial dies as "Subprocess terminated". ``-I`` covers the worker itself only.
        env = dict(os.environ, TVM_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1", PYTHONSAFEPATH="1")
        env.pop("PYTHONPATH", None)  # the worker must see TVM's environment only
        self.threads = threads
        self.proc = subprocess.Popen([str(python), "-I", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        self._lock = threading.Lock()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip() and "Warning: Scope Saving" not in line:
                self.stderr.append(line.rstrip())

    def request(self, payload: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            try:
                self.proc.stdin.write(json.dumps(payload) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise DeviceError(f"the TVM worker exited: {self._tail()}") from None
            reply: list[str] = []
            reader = threading.Thread(target=lambda: reply.append(self.proc.stdout.readline()),  # type: ignore
                                      daemon=True)
            reader.start()
            reader.join(timeout_s)
            if reader.is_alive():
                self.close()
                raise DeviceError(f"the TVM worker did not answer {payload.get('op')!r} within {timeout_s:g} s "
                                  "(it was stopped)")
            if not reply or not reply[0]:
                self.proc.wait(timeout=5)
                raise DeviceError(f"the TVM worker exited with status {self.proc.returncode}: {self._tail()}")
            return json.loads(reply[0])

    def _tail(self) -> str:
        lines = [line for line in self.stderr if line.strip()]
        return " | ".join(lines[-3:]) or "no output"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class TvmDevice(Device):
    """Options: ``target`` (a TVM target string such as "llvm" or "cuda", or a table such as
    ``{kind = "llvm", mcpu = "skylake"}``); ``tuning``: "default-schedules" (TVM's default pipeline: dlight's
    rule-based schedules on GPU targets, generic ones on llvm) or "metaschedule" (``trials`` MetaSchedule trials per
    kernel not yet in the tuning database ``tuning_db``, default ``./tvm-tuning``, one folder per target: a kernel
    shape is tuned once); ``python`` (TVM's interpreter; default ``.venv-tvm/bin/python``);
    ``compile_timeout_s`` (import, tuning and compilation of one model)."""

    kind = "tvm"
    model_format = "onnx"

    def __init__(self, name: str = "tvm", target: str | Mapping[str, Any] = "llvm", tuning: str = "default-schedules",
                 python: str | None = None, compile_timeout_s: float = 900.0, trials: int = 64,
                 tuning_db: str = "tvm-tuning") -> None:
        super().__init__(name)
        if not isinstance(target, (str, Mapping)) or not target:
            raise ConfigError(f"device {name!r}: target must be a TVM target string (\"llvm\", \"cuda\") or a table "
                              f"with kind = \"…\", got {target!r}")
        if isinstance(target, str) and " -" in target:
            raise ConfigError(f"device {name!r}: TVM 0.27 rejects option strings like {target!r}; write the target "
                              "as a table, e.g. target = { kind = \"llvm\", mcpu = \"skylake\" }")
        if tuning not in TUNINGS:
            raise ConfigError(f"device {name!r}: tuning must be one of {', '.join(TUNINGS)}, got {tuning!r}")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ConfigError(f"device {name!r}: trials must be an integer >= 1, got {trials!r}")
        self.target: str | dict[str, Any] = target if isinstance(target, str) else dict(target)
        self.tuning = tuning
        self.python = Path(python).expanduser() if python else default_tvm_python()
        self.compile_timeout_s = float(compile_timeout_s)
        self.trials = trials
        target_id = hashlib.sha256(json.dumps(self.target, sort_keys=True).encode()).hexdigest()[:12]
        self.tuning_db = Path(tuning_db).expanduser().resolve() / target_id
        self.last_tuning: dict[str, int] = {}  # kernels of the latest measured model, and how many were tuned for it
        self._worker: _WorkerProcess | None = None
        self._hello: dict[str, Any] | None = None
        self.last_compile_s: float | None = None  # how long the latest measured model took to import and compile

    # ------------------------------------------------------------------------------------------- lifecycle

    def _call(self, payload: dict[str, Any], threads: int = 1, timeout_s: float | None = None) -> dict[str, Any]:
        if self._worker is not None and (self._worker.threads != threads or self._worker.proc.poll() is not None):
            self._worker.close()  # TVM's thread pool size is fixed when the runtime starts
            self._worker = None
        if self._worker is None:
            self._worker = _WorkerProcess(self.python, threads)
        tuning = {"tuning": self.tuning}
        if self.tuning == "metaschedule":
            tuning.update(trials=self.trials, tuning_db=str(self.tuning_db))
        reply = self._worker.request({**payload, "target": self.target, **tuning}, timeout_s or self.compile_timeout_s)
        if "error" in reply:
            kind, message = reply.get("kind", ""), reply["error"]
            if kind in ("model", "import", "unsupported-op"):
                raise ModelFormatError(message)
            if kind in ("target", "tuning-db"):
                raise ConfigError(f"device {self.name!r}: {message}")
            raise DeviceError(f"device {self.name!r}: {message}")
        return reply

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _facts(self) -> dict[str, Any]:
        if self._hello is None:
            self._hello = self._call({"op": "hello"}, timeout_s=120)
        return self._hello

    def check(self) -> str | None:
        try:
            facts = self._facts()
        except (DeviceError, ConfigError, MissingDependencyError) as exc:
            return str(exc)
        if not facts.get("device_exists"):
            kind = facts.get("target_kind", "")
            return f"no {kind.upper() if kind == 'cuda' else kind} device on this machine (TVM compiles for it, " \
                   "but nothing can run here)"
        return None

    def info(self, settings: BenchmarkSettings | None = None) -> DeviceInfo:
        facts = self._facts()
        on_host = facts.get("target_kind") == "llvm"
        hardware = host.cpu_model() if on_host else str(facts.get("device_name") or facts.get("target_kind"))
        properties = {"target": str(facts.get("target", self.target)), "tuning": self.tuning,
                      "untuned": str(self.tuning != "metaschedule").lower()}
        if self.tuning == "metaschedule":
            properties["trials"] = str(self.trials)
        if facts.get("compute_version"):
            properties["compute_version"] = str(facts["compute_version"])
        if on_host:
            properties.update(host.cpu_properties())
        cpus = host.affinity() if on_host else None
        return DeviceInfo(name=self.name, kind=self.kind, hardware=hardware, runtime="tvm",
                          runtime_version=str(facts.get("tvm_version", "")), tailorkit_version=__version__,
                          threads=settings.threads if settings else 1, affinity=cpus, properties=properties,
                          state=host.cpu_state(cpus) if cpus else {})

    # -------------------------------------------------------------------------------------------- measuring

    def _model(self, path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None) -> dict[str, Any]:
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            raise ModelFormatError(f"device {self.name!r} runs .onnx files; {str(path)!r} is not one")
        shapes = resolve_input_shapes(path, input_shapes)
        return {"model": str(path.resolve()), "shapes": {k: list(v) for k, v in shapes.items()}}

    def run_model(self, path: str | Path, settings: BenchmarkSettings,
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Latency:
        if settings.target_cv is not None:
            log.info("device %s: the TVM device takes a fixed number of runs (%d); target_cv is ignored", self.name,
                     settings.runs)
        reply = self._call({"op": "run", **self._model(path, input_shapes), "warmup": settings.warmup,
                            "runs": settings.runs, "number": settings.number,
                            "min_sample_ms": settings.min_sample_ms},
                           threads=settings.threads, timeout_s=self.compile_timeout_s + settings.timeout_s)
        self.last_compile_s = float(reply["compile_s"])
        self.last_tuning = dict(reply.get("tuned") or {})
        return Latency.from_samples(reply["samples_ms"], outlier=settings.outlier, number=int(reply["number"]))

    def profile_ops(self, path: str | Path, settings: BenchmarkSettings,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[OpLatency]:
        """Per compiled kernel, timed through the VM's instrument hook (synchronised around each call), in first-
        call order. TVM fuses and specialises: ``conv2d1`` is the second conv2d shape, ``fused_conv2d_add_relu``
        three graph ops in one kernel; allocation and shape builtins are left out."""
        reply = self._call({"op": "profile", **self._model(path, input_shapes), "warmup": settings.warmup,
                            "runs": settings.runs},
                           threads=settings.threads, timeout_s=self.compile_timeout_s + settings.timeout_s)
        provider = f"tvm-{self._facts().get('target_kind', 'llvm')}"
        return [OpLatency(name=k["name"], op_type=kernel_op_type(k["name"]), provider=provider,
                          latency=Latency(mean=float(k["ms_per_run"]), std=0.0, n=int(reply["runs"])))
                for k in reply["kernels"]]

    def infer(self, path: str | Path, inputs: Sequence[Path], output_prefix: Path,
              input_shapes: Mapping[str, Sequence[int]] | None = None, rows: bool = False) -> list[Path]:
        """Run ``path`` on ``.npy`` inputs (compiled for their shapes unless ``input_shapes`` says otherwise); the
        outputs as ``.npy`` files (to compare with another runtime). ``rows``: each file holds N inputs for a
        batch-1 model, run one by one in a single request."""
        if input_shapes is None:
            names = list(onnx_input_shapes(path))
            shapes = [np.load(p, mmap_mode="r").shape for p in inputs]
            input_shapes = {name: (1, *shape[1:]) if rows else shape
                            for name, shape in zip(names, shapes, strict=False)}
        reply = self._call({"op": "infer", **self._model(path, input_shapes), "inputs": [str(p) for p in inputs],
                            "output_prefix": str(output_prefix), "rows": rows})
        return [Path(p) for p in reply["outputs"]]

    def export_library(self, path: str | Path, output: str | Path,
                       input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
        """Compile ``path`` for the target into a shared library at ``output`` (no device needed)."""
        return self._call({"op": "export", **self._model(path, input_shapes), "output": str(Path(output).resolve())})


def kernel_op_type(kernel: str) -> str:
    """``fused_conv2d_add_relu1`` → ``conv2d_add_relu``: the kernel's ops without TVM's per-shape suffix."""
    name = re.sub(r"^(fused_|tir_)", "", re.sub(r"\d+$", "", kernel))
    return name or kernel
