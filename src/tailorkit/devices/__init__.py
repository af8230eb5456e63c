"""Devices: adapters that run models and report latency (ONNX Runtime here; Android and TVM plug in)."""

from __future__ import annotations

import inspect

from tailorkit.core.config import DeviceConfig
from tailorkit.core.errors import ConfigError
from tailorkit.core.registry import Registry
from tailorkit.devices.android import AndroidDevice
from tailorkit.devices.base import Device
from tailorkit.devices.litert import LiteRtDevice
from tailorkit.devices.onnxruntime import OnnxRuntimeDevice
from tailorkit.devices.tvm import TvmDevice

devices: Registry[Device] = Registry("devices")
devices.register("onnxruntime")(OnnxRuntimeDevice)
devices.register("litert")(LiteRtDevice)
devices.register("android")(AndroidDevice)
devices.register("tvm")(TvmDevice)


def create_device(config: DeviceConfig) -> Device:
    """The adapter for a configured device; unknown kinds and options are configuration errors."""
    factory = devices.get(config.kind)
    try:
        inspect.signature(factory).bind(name=config.name, **config.options)
    except TypeError:
        accepted = [p for p in inspect.signature(factory).parameters if p != "name"]
        unknown = sorted(set(config.options) - set(accepted))
        raise ConfigError(f"device {config.name!r} ({config.kind}): unknown options {unknown}; "
                          f"known: {accepted}") from None
    return factory(name=config.name, **config.options)


__all__ = ["AndroidDevice", "Device", "LiteRtDevice", "OnnxRuntimeDevice", "TvmDevice", "create_device", "devices"]
