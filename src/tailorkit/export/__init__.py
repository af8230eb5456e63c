"""Exporters: a torch module → the file format a device runs, with checksums and verification."""

from tailorkit.core.registry import Registry
from tailorkit.export.onnx import OnnxExporter, onnx_input_shapes, resolve_input_shapes

exporters: Registry[OnnxExporter] = Registry("exporters")
exporters.register("onnx")(OnnxExporter)

__all__ = ["OnnxExporter", "exporters", "onnx_input_shapes", "resolve_input_shapes"]
