"""torch module → ONNX. Every adapter that needs ONNX gets it here, never ad hoc."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tailorkit.core.documents import sha256_file
from tailorkit.core.errors import ConfigError, ModelFormatError
from tailorkit.core.lazy import optional_import
from tailorkit.core.records import ExportArtifact

log = logging.getLogger(__name__)

OPSET = 17


class OnnxExporter:
    """Exports with the TorchScript-based exporter (``dynamo=False``): ~35 ms for one block versus seconds for
    the dynamo exporter, and a single self-contained file (no ``.onnx.data`` sidecar). Table building exports
    hundreds of single-op models, so this choice is most of the table-build overhead (RUNTIME-NOTES.md)."""

    format = "onnx"

    def __init__(self, opset: int = OPSET) -> None:
        self.opset = opset

    def export(self, module: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor],
               path: str | Path, *, input_names: Sequence[str] | None = None,
               dynamic_spatial: bool = False) -> ExportArtifact:
        """``dynamic_spatial``: height and width of every 4-D input become named dynamic dims, so one file runs
        at the deployment resolution (measured) and at the resolution its weights were trained at (verified)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        inputs = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
        names = list(input_names) if input_names else (
            ["input"] if len(inputs) == 1 else [f"input{i}" for i in range(len(inputs))])
        dynamic = {n: {2: "height", 3: "width"} for n, t in zip(names, inputs, strict=True) if t.dim() == 4} \
            if dynamic_spatial else None
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, once per op
                torch.onnx.export(module.eval(), inputs, str(tmp), dynamo=False, opset_version=self.opset,
                                  input_names=names, output_names=["output"], do_constant_folding=True,
                                  dynamic_axes=dynamic)
            tmp.replace(path)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise ModelFormatError(f"could not export the module to ONNX: {exc}") from exc
        return ExportArtifact(path=str(path), format=self.format, checksum=sha256_file(path),
                              input_shapes={n: tuple(t.shape) for n, t in zip(names, inputs, strict=True)})


# ------------------------------------------------------------------------------------ simplify, check, int8

SIMPLIFIERS = ("onnxsim", "onnxslim")
# benchmarks/export.py measures both: the same node counts and latencies on OFA subnets, onnxsim in about half
# the time, so it is the default
DEFAULT_SIMPLIFIER = "onnxsim"


@dataclass(frozen=True)
class Simplification:
    tool: str
    nodes_before: int
    nodes_after: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"tool": self.tool, "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
                "seconds": round(self.seconds, 3)}


def check_onnx(path: str | Path) -> None:
    """``onnx.checker`` with shape inference: a malformed graph is a ModelFormatError, not a runtime crash."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # the checker raises ValidationError, InferenceError, …
        raise ModelFormatError(f"{str(path)!r} fails onnx.checker: {exc}") from None


def simplify_onnx(path: str | Path, tool: str = DEFAULT_SIMPLIFIER) -> Simplification:
    """Fold constants and remove redundant nodes in place with ``tool`` (onnxsim or onnxslim)."""
    import onnx

    if tool not in SIMPLIFIERS:
        raise ConfigError(f"simplifier must be one of {', '.join(SIMPLIFIERS)}, got {tool!r}")
    path = Path(path)
    model = onnx.load(str(path))
    before = len(model.graph.node)
    start = time.perf_counter()
    try:
        if tool == "onnxsim":
            onnxsim = optional_import("onnxsim", "export", "ONNX simplification")
            simplified, ok = onnxsim.simplify(model)
            if not ok:
                raise ModelFormatError("onnxsim could not validate the simplified graph")
        else:
            onnxslim = optional_import("onnxslim", "export", "ONNX simplification")
            simplified = onnxslim.slim(model)
    except ModelFormatError:
        raise
    except Exception as exc:  # the simplifiers raise whatever their passes raise
        raise ModelFormatError(f"{tool} failed on {str(path)!r}: {exc}") from None
    seconds = time.perf_counter() - start
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(simplified, str(tmp))
    tmp.replace(path)
    return Simplification(tool, before, len(simplified.graph.node), seconds)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer warns through the root logger; keep its advice out of the user's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx_int8(source: str | Path, target: str | Path, calibration: Iterable[np.ndarray],
                       input_name: str = "input") -> None:
    """Static int8 quantization in ONNX Runtime's QDQ form: per-channel int8 weights, uint8 activations with
    MinMax ranges over ``calibration`` (real inputs; random ones give ranges the deployed model never sees).
    uint8 activations, because int8 ones fall off ORT's fast x86 kernels: 13.4 ms against 3.3 ms (float 4.4 ms)
    for an OFA subnet at 160 px here. Inputs and outputs stay float32, so the file runs wherever the float one
    did."""
    quant = optional_import("onnxruntime.quantization", "dev", "ONNX int8 quantization")
    samples = [np.ascontiguousarray(x, dtype=np.float32) for x in calibration]
    if not samples:
        raise ConfigError("int8 quantization needs calibration inputs")

    class Reader(quant.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self._it = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with _quiet_root_logger():  # "consider pre-processing": measured, it changes nothing here
            quant.quantize_static(str(source), str(tmp), Reader(), quant_format=quant.QuantFormat.QDQ,
                                  per_channel=True, activation_type=quant.QuantType.QUInt8,
                                  weight_type=quant.QuantType.QInt8,
                                  calibrate_method=quant.CalibrationMethod.MinMax)
        tmp.replace(target)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ModelFormatError(f"int8 quantization of {str(source)!r} failed: {exc}") from None
