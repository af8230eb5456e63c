"""CPU (or any execution provider) through ONNX Runtime, in this process."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError, DeviceError, ModelFormatError
from tailorkit.core.lazy import optional_import
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency, PairedLatency
from tailorkit.core.timing import DEFAULT_PAIRS, time_paired, time_runs
from tailorkit.core.version import __version__
from tailorkit.devices import host
from tailorkit.devices.base import Device
from tailorkit.export.shapes import resolve_input_shapes

log = logging.getLogger(__name__)

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
_KERNEL_SUFFIX = "_kernel_time"


def _ort() -> Any:
    return optional_import("onnxruntime", "dev", "the onnxruntime device")


class OnnxRuntimeDevice(Device):
    """Options (``[devices.NAME]`` in tailor.toml): ``provider`` (default CPUExecutionProvider),
    ``optimization`` (disable|basic|extended|all; with ``disable`` the per-op profile maps 1:1 to graph nodes,
    with ``all`` it shows what ORT really runs after fusing), ``inter_threads``, ``affinity`` (CPU ids the
    measuring thread and ORT's pool are pinned to). Threads come from the benchmark settings."""

    kind = "onnxruntime"
    model_format = "onnx"

    def __init__(self, name: str = "cpu", provider: str = "CPUExecutionProvider", optimization: str = "all",
                 inter_threads: int = 1, affinity: Sequence[int] | None = None) -> None:
        super().__init__(name)
        if not isinstance(provider, str) or not provider.endswith("ExecutionProvider"):
            raise ConfigError(f"device {name!r}: provider must name an ONNX Runtime execution provider such as "
                              f"'CPUExecutionProvider', got {provider!r}")
        if optimization not in OPTIMIZATION_LEVELS:
            raise ConfigError(f"device {name!r}: optimization must be one of {OPTIMIZATION_LEVELS}, "
                              f"got {optimization!r}")
        if not isinstance(inter_threads, int) or inter_threads < 1:
            raise ConfigError(f"device {name!r}: inter_threads must be an integer >= 1, got {inter_threads!r}")
        if affinity is not None:
            available = set(host.affinity())
            if not affinity or not all(isinstance(c, int) for c in affinity) or not set(affinity) <= available:
                raise ConfigError(f"device {name!r}: affinity must list CPU ids from {sorted(available)}, "
                                  f"got {affinity!r}")
        self.provider = provider
        self.optimization = optimization
        self.inter_threads = inter_threads
        self.affinity = tuple(sorted(affinity)) if affinity is not None else None

    # ------------------------------------------------------------------------------------------ identity

    def info(self, settings: BenchmarkSettings | None = None) -> DeviceInfo:
        ort = _ort()
        cpus = self.affinity or host.affinity()
        return DeviceInfo(
            name=self.name, kind=self.kind, hardware=host.cpu_model(), runtime="onnxruntime",
            runtime_version=ort.__version__, tailorkit_version=__version__,
            # the effective CPU set (configured, or what taskset/cgroups left this process) shapes the numbers
            threads=settings.threads if settings else 1, affinity=cpus,
            properties={"provider": self.provider, "optimization": self.optimization,
                        "inter_threads": str(self.inter_threads), **host.cpu_properties()},
            state=host.cpu_state(cpus),
        )

    def check(self) -> str | None:
        try:
            ort = _ort()
        except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a status check
            return str(exc)
        available = ort.get_available_providers()
        if self.provider not in available:
            return f"execution provider {self.provider} is not available (have: {', '.join(available)})"
        return None

    # --------------------------------------------------------------------------------------- measuring

    def run_model(self, path: str | Path, settings: BenchmarkSettings,
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Latency:
        with self._pinned(), self._session(path, settings, input_shapes=input_shapes) as (session, feeds):
            outputs = [o.name for o in session.get_outputs()]
            return time_runs(lambda: session.run(outputs, feeds), settings)

    def run_paired(self, path: str | Path, reference: str | Path, settings: BenchmarkSettings,
                   input_shapes: Mapping[str, Sequence[int]] | None = None,
                   reference_shapes: Mapping[str, Sequence[int]] | None = None, *,
                   pairs: int = DEFAULT_PAIRS) -> PairedLatency:
        with self._pinned(), self._session(reference, settings, input_shapes=reference_shapes) as (ref, ref_feeds), \
                self._session(path, settings, input_shapes=input_shapes) as (session, feeds):
            ref_out = [o.name for o in ref.get_outputs()]
            out = [o.name for o in session.get_outputs()]
            return time_paired(lambda: session.run(out, feeds), lambda: ref.run(ref_out, ref_feeds), settings, pairs)

    def profile_ops(self, path: str | Path, settings: BenchmarkSettings,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[OpLatency]:
        with tempfile.TemporaryDirectory(prefix="tailor-ort-prof-") as tmp:
            with self._pinned(), self._session(path, settings, profile_dir=tmp,
                                               input_shapes=input_shapes) as (session, feeds):
                outputs = [o.name for o in session.get_outputs()]
                deadline = time.monotonic() + settings.timeout_s
                for _ in range(settings.warmup + settings.runs):
                    session.run(outputs, feeds)
                    if time.monotonic() > deadline:
                        raise DeviceError(f"per-op profiling exceeded its timeout of {settings.timeout_s:g} s")
                trace = session.end_profiling()
            events = json.loads(Path(trace).read_text())
        return ops_from_trace(events, skip_runs=settings.warmup, outlier=settings.outlier)

    # ---------------------------------------------------------------------------------------- helpers

    @contextlib.contextmanager
    def _pinned(self) -> Iterator[None]:
        """Pin the calling thread (ORT's pool threads inherit it at session creation) and restore after."""
        if self.affinity is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.affinity)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    @contextlib.contextmanager
    def _session(self, path: str | Path, settings: BenchmarkSettings, *, profile_dir: str | None = None,
                 input_shapes: Mapping[str, Sequence[int]] | None = None) -> Iterator[tuple[Any, dict]]:
        ort = _ort()
        shapes = resolve_input_shapes(path, input_shapes)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = self.inter_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        options.log_severity_level = 4  # errors reach the user as one DeviceError line
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(profile_dir) / "ort")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a missing provider is reported below, as an error
                session = ort.InferenceSession(str(path), options, providers=[self.provider])
        except Exception as exc:  # ORT raises its own exception types per failure kind
            raise ModelFormatError(f"ONNX Runtime cannot load {str(path)!r}: {exc}") from None
        if self.provider not in session.get_providers():
            # ORT silently falls back to the CPU; numbers stored under this device would be wrong
            raise DeviceError(f"device {self.name!r}: execution provider {self.provider} is not available "
                              f"(ONNX Runtime has {', '.join(ort.get_available_providers())})")
        feeds = {i.name: _random_input(i.type, shapes[i.name]) for i in session.get_inputs()}
        try:
            yield session, feeds
        except ModelFormatError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("onnxruntime"):
                raise DeviceError(f"ONNX Runtime failed running {str(path)!r}: {exc}") from None
            raise


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
           "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


_MAX_INPUT_BYTES = 4 << 30


def _random_input(ort_type: str, shape: Sequence[int]) -> np.ndarray:
    dtype = _DTYPES.get(ort_type)
    if dtype is None:
        raise ModelFormatError(f"inputs of type {ort_type} are not supported")
    size = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    if size > _MAX_INPUT_BYTES:
        raise ConfigError(f"an input of shape {'x'.join(map(str, shape))} needs {size / 2**30:.0f} GiB; "
                          "check --shape")
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)  # integer inputs are usually indices: zeros are always valid


def ops_from_trace(events: list[dict[str, Any]], skip_runs: int, outlier: str) -> list[OpLatency]:
    """Aggregate ORT's Chrome-trace profile: kernel events (``<node>_kernel_time``) are assigned to the
    ``model_run`` they fall in, the first ``skip_runs`` runs (warm-up) dropped, and each node's per-run time
    summarised. Nodes keep their first-execution order."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(runs) <= skip_runs:
        raise DeviceError(f"the ORT profile has {len(runs)} runs, expected more than {skip_runs}")
    kept = runs[skip_runs:]
    per_node: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, str]] = {}
    run_index = 0
    for event in sorted((e for e in events if e.get("cat") == "Node"
                         and str(e.get("name", "")).endswith(_KERNEL_SUFFIX)), key=lambda e: e["ts"]):
        ts = event["ts"]
        while run_index < len(kept) and ts > kept[run_index][1]:
            run_index += 1
        if run_index == len(kept):
            break
        if ts < kept[run_index][0]:
            continue  # a warm-up run's kernel
        name = event["name"][: -len(_KERNEL_SUFFIX)]
        args = event.get("args", {})
        meta.setdefault(name, (args.get("op_name", "?"), args.get("provider", "")))
        samples = per_node[name]
        # a node runs once per inference; sum repeats inside one run (loops, subgraphs)
        if len(samples) == run_index + 1:
            samples[-1] += event["dur"] / 1000.0
        else:
            samples.extend([0.0] * (run_index - len(samples)))
            samples.append(event["dur"] / 1000.0)
    if not per_node:
        raise DeviceError("the ORT profile has no kernel events")
    return [OpLatency(name=name, op_type=meta[name][0], provider=meta[name][1],
                      latency=Latency.from_samples(samples, outlier)) for name, samples in per_node.items()]
