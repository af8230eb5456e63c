"""The Device seam: paths, settings and records in, records out, so an adapter can run in-process, in a
worker process or behind a farm without a second implementation."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency


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
