"""Turn what a user names — a model file, a built-in model, a torch module or ``package.module:attr`` — into
the file a device runs (ONNX or TFLite), through ``tailorkit.export``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tailorkit.core.errors import ConfigError, ModelFormatError
from tailorkit.export.onnx import OnnxExporter
from tailorkit.export.shapes import resolve_input_shapes
from tailorkit.export.tflite import TfliteExporter, tflite_input_shape
from tailorkit.spaces.ofa_mbv3 import OFAMobileNetV3Space

InputShapes = Mapping[str, Sequence[int]]


def _ofa(width: float, which: str) -> Callable[[int], tuple[nn.Module, tuple[int, ...]]]:
    def build(resolution: int) -> tuple[nn.Module, tuple[int, ...]]:
        space = OFAMobileNetV3Space(width=width)
        arch = space.largest(resolution) if which == "max" else space.smallest(resolution)
        return space.build(arch), space.input_shape(arch)

    return build


BUILTIN_MODELS: dict[str, Callable[[int], tuple[nn.Module, tuple[int, ...]]]] = {
    "ofa-mbv3-max": _ofa(1.0, "max"),
    "ofa-mbv3-min": _ofa(1.0, "min"),
    "ofa-mbv3-w1.2-max": _ofa(1.2, "max"),
    "ofa-mbv3-w1.2-min": _ofa(1.2, "min"),
}


@dataclass(frozen=True)
class PreparedModel:
    path: Path
    label: str
    input_shapes: dict[str, tuple[int, ...]]


def prepare_model(model: str | Path | nn.Module, workdir: Path, *, input_shapes: InputShapes | None = None,
                  resolution: int = 224, fmt: str = "onnx", as_exported: bool = False) -> PreparedModel:
    """The file a device runs for ``model``: a model file as it is (.onnx, .tflite), an .onnx converted when
    ``fmt`` is tflite, anything else exported to ``fmt`` (onnx or tflite) into ``workdir``. ``as_exported``: a
    torch module becomes ONNX as `tailor export` writes it, with dynamic height and width — ONNX Runtime runs
    such a file 1.5–4 % slower than a static one here (OFA subnets), so whatever is compared with exported
    files (an end-to-end calibration, a closed loop) is measured in that form."""
    if isinstance(model, nn.Module):
        return _export(model, type(model).__name__, workdir, _single_shape(input_shapes, "a torch module"), fmt,
                       as_exported)
    text = str(model)
    if text in BUILTIN_MODELS:
        if input_shapes:
            raise ConfigError(f"built-in model {text!r} has a fixed input; use --resolution instead of --shape")
        module, shape = BUILTIN_MODELS[text](resolution)
        return _export(module, f"{text}@{resolution}", workdir, shape, fmt)
    path = Path(text)
    if path.is_dir():
        raise ModelFormatError(f"model {text!r} is a directory, not a model file")
    if path.suffix.lower() == ".tflite":
        if not path.is_file():
            raise ModelFormatError(f"model file {text!r} does not exist")
        shape = _single_shape(input_shapes, text) if input_shapes else tflite_input_shape(path)
        return PreparedModel(path=path, label=path.name, input_shapes={"input": shape})
    if path.suffix.lower() == ".onnx" or path.is_file():
        if not path.is_file():
            raise ModelFormatError(f"model file {text!r} does not exist")
        shapes = resolve_input_shapes(path, input_shapes)
        if fmt == "tflite":
            return _onnx_as_tflite(path, shapes, workdir)
        return PreparedModel(path=path, label=path.name, input_shapes=shapes)
    if ":" in text and not path.exists():
        module = _import_module_attr(text)
        return _export(module, text, workdir, _single_shape(input_shapes, f"{text!r}"), fmt)
    raise ModelFormatError(f"model {text!r} is not a file, a built-in ({', '.join(BUILTIN_MODELS)}) "
                           "or package.module:attr")


def _single_shape(input_shapes: InputShapes | None, what: str) -> tuple[int, ...]:
    if not input_shapes or len(input_shapes) != 1:
        raise ConfigError(f"{what} needs its input shape: --shape 1x3x224x224")
    return tuple(int(d) for d in next(iter(input_shapes.values())))


def _export(module: nn.Module, label: str, workdir: Path, shape: tuple[int, ...], fmt: str,
            as_exported: bool = False) -> PreparedModel:
    torch.manual_seed(0)
    exporter = TfliteExporter() if fmt == "tflite" else OnnxExporter()
    # `tailor export` writes TFLite at the deployment shape: for it the two forms are one
    options = {"dynamic_spatial": True} if as_exported and fmt != "tflite" else {}
    artifact = exporter.export(module.eval(), torch.randn(*shape), workdir / f"model.{exporter.format}", **options)
    return PreparedModel(path=Path(artifact.path), label=label, input_shapes=dict(artifact.input_shapes))


def _onnx_as_tflite(path: Path, shapes: dict[str, tuple[int, ...]], workdir: Path) -> PreparedModel:
    """An ONNX file for a TFLite device: rebuilt as a torch module (``export/onnx_import``), checked against ONNX
    Runtime on a random input, then exported through the TFLite exporter like any torch model."""
    from tailorkit.export.onnx_import import onnx_to_torch
    from tailorkit.export.verify import model_runner

    if len(shapes) != 1:
        raise ModelFormatError(f"{path.name} has {len(shapes)} inputs; converting ONNX to TFLite takes one-input "
                               "models")
    (shape,) = shapes.values()
    module = onnx_to_torch(path, shapes)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    with torch.no_grad():
        ours = module(x)
    ours = (ours[0] if isinstance(ours, tuple) else ours).numpy()
    reference = model_runner(path, "onnx")(x.numpy())
    gap = float(np.abs(ours - reference).max())
    if gap > 1e-3 * max(1.0, float(np.abs(reference).max())):
        raise ModelFormatError(f"converting {path.name} to torch changed its outputs (max |Δ| {gap:.3g} against ONNX "
                               "Runtime); export the model to TFLite from its source framework instead")
    return _export(module, f"{path.name} (as tflite)", workdir, shape, "tflite")


def _import_module_attr(spec: str) -> nn.Module:
    """Import ``package.module:attr``; a class or function is called without arguments. This runs the user's
    own code, which is what they asked for; model files are never unpickled."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelFormatError(f"{spec!r} must look like package.module:attr")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module may fail in any way while importing
        raise ModelFormatError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelFormatError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - as above: user code
            raise ModelFormatError(f"calling {spec!r} without arguments failed: {type(exc).__name__}: {exc}"
                                   ) from None
    if not isinstance(obj, nn.Module):
        raise ModelFormatError(f"{spec!r} is not a torch.nn.Module (got {type(obj).__name__})")
    return obj
