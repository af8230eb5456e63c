"""torch module → TFLite through litert-torch (float32, or int8 by PT2E static quantization).

litert-torch and apache-tvm cannot share an environment (RUNTIME-NOTES.md): this exporter lives in the main
environment, TVM in its own. The converter prints its own progress and C++ logs; they are captured here and
logged at debug level, and shown only when the conversion fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tailorkit.core.documents import sha256_file
from tailorkit.core.errors import ConfigError, ModelFormatError
from tailorkit.core.lazy import optional_import
from tailorkit.core.records import ExportArtifact
from tailorkit.export import QUANTIZATIONS

if TYPE_CHECKING:  # torch loads in the exporter only: running a .tflite (LiteRT, phones) needs none
    import torch
    from torch import nn

log = logging.getLogger(__name__)


def _litert_torch() -> Any:
    # before the import: the converter reads these once
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for noisy in ("torchao", "torch.utils._pytree", "absl", "jax._src.xla_bridge"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with _captured_fd_output():  # absl and oneDNN announce themselves on stderr at import
        module = optional_import("litert_torch", "tflite", "the TFLite exporter")
    module.config.show_progress = False
    return module


@contextlib.contextmanager
def _captured_fd_output() -> Iterator[list[str]]:
    """Redirect the process's stdout and stderr file descriptors (the converter's C++ code writes there, past
    Python's sys.stdout) into a temporary file; the lines are handed back after the block."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            yield lines
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
            for line in lines:
                log.debug("litert: %s", line)


class TfliteExporter:
    """``quantize="int8"``: PT2E static quantization with litert-torch's symmetric per-channel config; the
    observers see ``calibration`` (real inputs) before the model is frozen. The int8 file has int8 inputs and
    outputs: :class:`TfliteRunner` applies their scale and zero point."""

    format = "tflite"

    def export(self, module: nn.Module, example_input: torch.Tensor, path: str | Path, *,
               quantize: str | None = None, calibration: Iterable[torch.Tensor] = ()) -> ExportArtifact:
        """``calibration`` (int8): real inputs, at the deployment shape or at the shape the weights were trained
        on; the ranges observed on them are the ones the file keeps."""
        if quantize is not None and quantize not in QUANTIZATIONS:
            raise ConfigError(f"TFLite quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        litert_torch = _litert_torch()
        module = module.eval()
        args = (example_input.contiguous(),)
        tmp = path.with_name(f".{path.name}.tmp")
        with _captured_fd_output() as output:
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.export's and torchao's deprecation notices
                    if quantize == "int8":
                        edge = self._convert_int8(litert_torch, module, args, list(calibration))
                    else:
                        edge = litert_torch.convert(module, args)
                    edge.export(str(tmp))
                failure: Exception | None = None
            except Exception as exc:  # the converter raises from torch.export, MLIR and its own checks
                failure = exc
        if failure is not None:
            tmp.unlink(missing_ok=True)
            tail = "\n".join(output[-5:])
            raise ModelFormatError(f"could not convert the module to TFLite: {type(failure).__name__}: {failure}"
                                   + (f"\nconverter output:\n{tail}" if tail else "")) from None
        tmp.replace(path)
        return ExportArtifact(path=str(path), format=self.format, checksum=sha256_file(path),
                              input_shapes={"input": tuple(example_input.shape)})

    @staticmethod
    def _convert_int8(litert_torch: Any, module: nn.Module, args: tuple[torch.Tensor, ...],
                      calibration: Sequence[torch.Tensor]) -> Any:
        import torch

        if not calibration:
            raise ConfigError("int8 quantization needs calibration inputs")
        quantizer_mod = optional_import("litert_torch.quantize.pt2e_quantizer", "tflite", "TFLite int8")
        quant_config = optional_import("litert_torch.quantize.quant_config", "tflite", "TFLite int8")
        pt2e = optional_import("torchao.quantization.pt2e.quantize_pt2e", "tflite", "TFLite int8")
        quantizer = quantizer_mod.PT2EQuantizer().set_global(
            quantizer_mod.get_symmetric_quantization_config(is_per_channel=True))
        graph = pt2e.prepare_pt2e(torch.export.export(module, args).module(), quantizer)
        shape = tuple(calibration[0].shape)
        if shape == tuple(args[0].shape):
            observed = graph
        else:
            # Calibrating needs the inputs the weights were trained on, while the file keeps the deployment
            # shape; one dynamic-shape trace cannot cover both (a 1x1 final feature map specialises the graph),
            # so observe on a trace at the calibration shape and copy the ranges over observer by observer.
            observed = pt2e.prepare_pt2e(torch.export.export(module, (calibration[0].contiguous(),)).module(),
                                         quantizer)
        for x in calibration:
            if tuple(x.shape) != shape:
                raise ConfigError("calibration inputs must all have one shape")
            observed(x.contiguous())
        if observed is not graph:
            _copy_observers(observed, graph)
        graph = pt2e.convert_pt2e(graph, fold_quantize=False)
        return litert_torch.convert(graph, args, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))


def _copy_observers(source: nn.Module, target: nn.Module) -> None:
    def observers(graph: nn.Module) -> dict[str, nn.Module]:
        return {name: m for name, m in graph.named_modules() if name.startswith("activation_post_process")}

    have, want = observers(source), observers(target)
    if set(have) != set(want):
        raise ModelFormatError(f"the calibration trace has {len(have)} observers, the deployment trace "
                               f"{len(want)}: they do not match one to one, calibrate at the deployment shape")
    for name, observer in want.items():
        observer.load_state_dict(have[name].state_dict())


def tflite_input_shape(path: str | Path) -> tuple[int, ...]:
    """The first input's shape as stored in a .tflite file (read with LiteRT's interpreter)."""
    interpreter = _interpreter(path, 1)
    return tuple(int(d) for d in interpreter.get_input_details()[0]["shape"])


def _interpreter(path: str | Path, threads: int, xnnpack: bool = True) -> Any:
    module = optional_import("ai_edge_litert.interpreter", "tflite", "running TFLite models")
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file {str(path)!r} does not exist")
    resolver = module.OpResolverType.AUTO if xnnpack else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with _captured_fd_output():  # LiteRT announces its XNNPACK delegate on stderr
            return module.Interpreter(model_path=str(path), num_threads=threads,
                                      experimental_op_resolver_type=resolver)
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{str(path)!r} is not a TFLite model LiteRT can load: {exc}") from None


class TfliteRunner:
    """One LiteRT interpreter over a file, resized to the input shape it is asked for; float arrays in and out
    whatever the file's own input and output types are (int8 files are quantized and dequantized here)."""

    def __init__(self, path: str | Path, threads: int = 1, xnnpack: bool = True) -> None:
        self._interpreter = _interpreter(path, threads, xnnpack)
        self._shape: tuple[int, ...] | None = None

    def resize(self, shape: Sequence[int]) -> None:
        shape = tuple(int(d) for d in shape)
        if shape == self._shape:
            return
        detail = self._interpreter.get_input_details()[0]
        try:
            if tuple(detail["shape"]) != shape:
                self._interpreter.resize_tensor_input(detail["index"], list(shape), strict=False)
            with _captured_fd_output():
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"the TFLite model cannot run with input shape {list(shape)}: {exc}") from None
        self._shape = shape

    def set_input(self, x: np.ndarray) -> None:
        self.resize(x.shape)
        detail = self._interpreter.get_input_details()[0]
        self._interpreter.set_tensor(detail["index"], _to_type(x, detail))

    def invoke(self) -> None:
        self._interpreter.invoke()

    def output(self) -> np.ndarray:
        detail = self._interpreter.get_output_details()[0]
        y = self._interpreter.get_tensor(detail["index"])
        scale, zero = detail.get("quantization", (0.0, 0))
        if np.issubdtype(y.dtype, np.integer) and scale:
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.set_input(x)
        self.invoke()
        return self.output()


def _to_type(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        raise ModelFormatError("the TFLite model takes integer inputs without a quantization scale")
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
