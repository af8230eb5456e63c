"""Run an exported file in its own runtime and compare it with the torch module it came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorkit.core.errors import ConfigError, ModelFormatError
from tailorkit.core.lazy import optional_import

RUNTIMES = {"onnx": "onnxruntime", "tflite": "ai-edge-litert"}


def model_runner(path: str | Path, fmt: str, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """``run(x)`` for one (1, C, H, W) float input → float outputs, in the runtime of ``fmt``."""
    if fmt == "onnx":
        ort = optional_import("onnxruntime", "dev", "running ONNX models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelFormatError(f"ONNX Runtime cannot load {str(path)!r}: {exc}") from None
        name = session.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        return run
    if fmt == "tflite":
        from tailorkit.export.tflite import TfliteRunner

        return TfliteRunner(path, threads)
    raise ConfigError(f"no runtime here runs {fmt!r} files (known: {', '.join(RUNTIMES)})")


def run_batch(path: str | Path, fmt: str, inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs for every row of ``inputs`` (N, C, H, W), one inference per row: exported files keep the
    deployment batch of 1."""
    run = model_runner(path, fmt, threads)
    try:
        return np.concatenate([run(inputs[i:i + 1]) for i in range(len(inputs))])
    except ModelFormatError:
        raise
    except Exception as exc:
        raise ModelFormatError(f"running {str(path)!r} failed: {exc}") from None


@dataclass(frozen=True)
class OutputAgreement:
    """How far a runtime's outputs are from torch's on the same inputs."""

    n: int
    top1_agreement: float  # share of inputs whose arg-max class is the same
    max_abs_diff: float
    reference_scale: float  # max |torch output|, to read max_abs_diff against

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "top1_agreement": round(self.top1_agreement, 6),
                "max_abs_diff": float(f"{self.max_abs_diff:.3g}"),
                "reference_scale": float(f"{self.reference_scale:.4g}")}


def compare_outputs(reference: np.ndarray, candidate: np.ndarray) -> OutputAgreement:
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ModelFormatError(f"the exported model's outputs have shape {candidate.shape}, torch's "
                               f"{reference.shape}")
    if not np.isfinite(candidate).all():
        raise ModelFormatError("the exported model produced NaN or infinite outputs")
    agree = float((reference.argmax(1) == candidate.argmax(1)).mean()) if len(reference) else 1.0
    return OutputAgreement(len(reference), agree, float(np.abs(reference - candidate).max(initial=0.0)),
                           float(np.abs(reference).max(initial=0.0)))
