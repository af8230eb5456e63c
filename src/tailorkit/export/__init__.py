"""Exporters: a torch module → the file format a device runs, with checksums and verification.

Importing the package stays light (device adapters need only :mod:`tailorkit.export.shapes` and the TFLite
runner); the torch exporters load torch when they are first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tailorkit.core.registry import Registry
from tailorkit.export.shapes import onnx_input_shapes, resolve_input_shapes

if TYPE_CHECKING:
    from tailorkit.export.onnx import OnnxExporter

QUANTIZATIONS = ("int8",)  # what the ONNX and the TFLite exporters both offer


def _onnx_exporter(**config: Any) -> OnnxExporter:
    from tailorkit.export.onnx import OnnxExporter

    return OnnxExporter(**config)


exporters: Registry[OnnxExporter] = Registry("exporters")
exporters.register("onnx")(_onnx_exporter)


def __getattr__(name: str) -> Any:
    if name == "OnnxExporter":
        from tailorkit.export.onnx import OnnxExporter

        return OnnxExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["QUANTIZATIONS", "OnnxExporter", "exporters", "onnx_input_shapes", "resolve_input_shapes"]
