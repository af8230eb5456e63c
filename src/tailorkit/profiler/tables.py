"""Building a lookup table: every distinct op of a space, measured as a single-op model, resumable."""

from __future__ import annotations

import logging
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tailorkit.core.lazy import torch_threads
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, LatencyRecord, OpSpec
from tailorkit.devices.base import Device
from tailorkit.export.onnx import OnnxExporter
from tailorkit.export.tflite import TfliteExporter
from tailorkit.profiler.store import TableStore
from tailorkit.spaces.blocks import build_op, example_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableProgress:
    """Sent to the progress callback after every op (and once at the start with ``key=None``)."""

    table: str
    total: int
    already: int
    done: int
    key: str | None = None
    latency: Latency | None = None


@dataclass(frozen=True)
class TableBuildReport:
    table: str
    device: DeviceInfo
    settings: BenchmarkSettings
    total: int
    already: int
    measured: int
    wall_s: float
    export_s: float
    measure_s: float
    timed_ms: float  # Σ of every timed run's duration: the time spent inside the runs themselves
    remaining: int = 0  # ops left unmeasured because of ``limit``

    @property
    def overhead(self) -> float:
        """Share of the wall time not spent in timed runs (export, session set-up, warm-up, bookkeeping)."""
        return 1.0 - self.timed_ms / 1000.0 / self.wall_s if self.wall_s > 0 else 0.0


def export_op(op: OpSpec, path: Path, fmt: str = "onnx") -> Path:
    """A single-op model for ``op`` in ``fmt`` (onnx or tflite), with weights seeded from its key (reproducible
    files)."""
    torch.manual_seed(zlib.crc32(op.key.encode()))
    return export_module(build_op(op), example_input(op), path, fmt)


def export_module(module: torch.nn.Module, example: torch.Tensor, path: Path, fmt: str = "onnx") -> Path:
    """``module`` as a model file a device of format ``fmt`` (onnx or tflite) runs, at ``example``'s shape."""
    exporter = TfliteExporter() if fmt == "tflite" else OnnxExporter()
    return Path(exporter.export(module, example, path.with_suffix(f".{exporter.format}")).path)


def build_table(ops: list[OpSpec], table: str, device: Device, store: TableStore, settings: BenchmarkSettings,
                *, space: str | None = None, meta: dict | None = None,
                progress: Callable[[TableProgress], None] | None = None,
                limit: int | None = None) -> TableBuildReport:
    """Measure each op of ``ops`` not yet stored for this device fingerprint and settings (at most ``limit`` of
    them), committing each measurement as it completes; returns what was done and where the time went."""
    start = time.perf_counter()
    info = device.info(settings)
    unique = list({op.key: op for op in ops}.values())
    store.ensure_table(table, space=space, meta=meta)
    already = store.measured_keys(table, info.fingerprint, settings.fingerprint)
    todo = [op for op in unique if op.key not in already]
    n_already = len(unique) - len(todo)
    remaining = max(0, len(todo) - limit) if limit is not None else 0
    todo = todo[:len(todo) - remaining]
    log.info("table %s on %s: %d ops, %d already measured", table, info.name, len(unique), n_already)
    if progress:
        progress(TableProgress(table, len(unique), n_already, 0))
    export_s = measure_s = timed_ms = 0.0
    with tempfile.TemporaryDirectory(prefix="tailor-table-") as tmp, torch_threads(1):
        for i, op in enumerate(todo, start=1):
            t0 = time.perf_counter()
            path = export_op(op, Path(tmp) / f"op{i}", device.model_format)
            t1 = time.perf_counter()
            latency = device.run_model(path, settings)
            t2 = time.perf_counter()
            export_s += t1 - t0
            measure_s += t2 - t1
            timed_ms += (sum(latency.samples) if latency.samples else latency.mean * latency.n) * latency.number
            store.add(LatencyRecord(table=table, key=op.key, device=device.info(settings), settings=settings,
                                    latency=latency, op=op))
            path.unlink(missing_ok=True)
            if progress:
                progress(TableProgress(table, len(unique), n_already, i, op.key, latency))
    return TableBuildReport(table=table, device=info, settings=settings, total=len(unique),
                            already=n_already, measured=len(todo), remaining=remaining,
                            wall_s=time.perf_counter() - start, export_s=export_s, measure_s=measure_s,
                            timed_ms=timed_ms)
