"""LiteRT (TFLite) on this host's CPU: what an Android phone runs, here, so a TFLite export is measured on the
runtime it was made for even without a phone. Per-op numbers need TFLite's ``benchmark_model`` (the Android
device runs it); the Python interpreter has no per-op profiler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from tailorkit.core.errors import ConfigError, DeviceError, ModelFormatError
from tailorkit.core.lazy import optional_import
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency
from tailorkit.core.timing import time_runs
from tailorkit.core.version import __version__
from tailorkit.devices import host
from tailorkit.devices.base import Device
from tailorkit.export.tflite import TfliteRunner, tflite_input_shape


class LiteRtDevice(Device):
    """Options: ``delegate`` = "xnnpack" (LiteRT's default CPU path) or "none" (its built-in kernels only);
    threads come from the benchmark settings. The choice matters: on this x86 machine a 7x7 depthwise convolution
    took 4.8 ms through XNNPACK and 1.4 ms through the built-in kernel, a 3x3 one 0.16 against 0.48 ms."""

    kind = "litert"
    model_format = "tflite"
    DELEGATES = ("xnnpack", "none")

    def __init__(self, name: str = "litert", delegate: str = "xnnpack") -> None:
        super().__init__(name)
        if delegate not in self.DELEGATES:
            raise ConfigError(f"device {name!r}: delegate must be one of {', '.join(self.DELEGATES)}, "
                              f"got {delegate!r}")
        self.delegate = delegate

    def info(self, settings: BenchmarkSettings | None = None) -> DeviceInfo:
        cpus = host.affinity()
        return DeviceInfo(
            name=self.name, kind=self.kind, hardware=host.cpu_model(), runtime="ai-edge-litert",
            runtime_version=_version(), tailorkit_version=__version__,
            threads=settings.threads if settings else 1, affinity=cpus,
            properties={"delegate": self.delegate, **host.cpu_properties()}, state=host.cpu_state(cpus))

    def check(self) -> str | None:
        try:
            optional_import("ai_edge_litert.interpreter", "tflite", "the litert device")
        except Exception as exc:  # noqa: BLE001 - a status check reports, it does not raise
            return str(exc)
        return None

    def run_model(self, path: str | Path, settings: BenchmarkSettings,
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Latency:
        if Path(path).suffix.lower() != ".tflite":
            raise ModelFormatError(f"device {self.name!r} runs .tflite files; {str(path)!r} is not one "
                                   "(export with --format tflite)")
        shape = _one_shape(path, input_shapes)
        runner = TfliteRunner(path, settings.threads, xnnpack=self.delegate == "xnnpack")
        runner.set_input(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        try:
            return time_runs(runner.invoke, settings)
        except DeviceError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"LiteRT failed running {str(path)!r}: {exc}") from None

    def profile_ops(self, path: str | Path, settings: BenchmarkSettings,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[OpLatency]:
        raise DeviceError(f"device {self.name!r}: LiteRT's Python interpreter has no per-op profiler; per-op "
                          "TFLite tables come from benchmark_model on an android device")


def _one_shape(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None) -> tuple[int, ...]:
    if not input_shapes:
        return tflite_input_shape(path)
    if len(input_shapes) != 1:
        raise ModelFormatError("the litert device runs single-input models")
    return tuple(int(d) for d in next(iter(input_shapes.values())))


def _version() -> str:
    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return "not installed"
