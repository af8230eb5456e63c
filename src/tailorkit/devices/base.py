"""The Device seam: paths, settings and records in, records out, so an adapter can run in-process, in a
worker process or behind a farm without a second implementation."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency, PairedLatency


class Device(abc.ABC):
    """A place models run. ``model_format`` names the file format ``run_model``/``profile_ops`` take (the
    profiler converts through ``tailorkit.export``)."""

    kind: str = ""
    model_format: str = "onnx"

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def info(self, settings: BenchmarkSettings | None = None) -> DeviceInfo:
        """The device as it measures with ``settings`` (threads change the fingerprint), state read now."""

    @abc.abstractmethod
    def check(self) -> str | None:
        """``None`` when the device is reachable and ready, else the reason it is not."""

    @abc.abstractmethod
    def run_model(self, path: str | Path, settings: BenchmarkSettings,
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Latency:
        """End-to-end latency of one inference."""

    @abc.abstractmethod
    def profile_ops(self, path: str | Path, settings: BenchmarkSettings,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[OpLatency]:
        """Per-node latency as the runtime executed the graph (after its fusions), in execution order."""

    def run_paired(self, path: str | Path, reference: str | Path, settings: BenchmarkSettings,
                   input_shapes: Mapping[str, Sequence[int]] | None = None,
                   reference_shapes: Mapping[str, Sequence[int]] | None = None, *, pairs: int = 5) -> PairedLatency:
        """``path`` measured in alternation with ``reference`` (see :class:`PairedLatency`). This fallback
        alternates whole :meth:`run_model` measurements, each a block, so a device pays its per-measurement cost
        (a push, a process start) ``2 × pairs`` times; in-process adapters alternate short blocks instead."""
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"pairs must be a whole number >= 1, got {pairs!r}")
        target: list[Latency] = []
        ref: list[Latency] = []
        for _ in range(pairs):
            ref.append(self.run_model(reference, settings, reference_shapes))
            target.append(self.run_model(path, settings, input_shapes))

        def blocks(runs: list[Latency]) -> list[list[float]]:
            # a device that returns only statistics gives one sample per run: its median, or its mean
            return [list(r.samples) if r.samples else [r.median if r.median is not None else r.mean]
                    for r in runs]

        return PairedLatency.from_blocks(blocks(target), blocks(ref), settings.outlier,
                                         int(np.median([r.number for r in target])),
                                         int(np.median([r.number for r in ref])))

    def connect(self) -> None:  # noqa: B027 - optional hook, most devices need no connection
        """Open a connection where the device needs one (phones, remote hosts)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`connect` opened."""

    def __enter__(self) -> Device:
        self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
