"""From a chosen arch to a verified, measured model file: the end of the loop.

``export_arch`` builds the specialised subnet with trained weights (extracted from a supernet with batch-norm
re-estimated for it, optionally fine-tuned; or trained from scratch), exports it in the runtime's format,
runs the file in that runtime on the digits test split against torch, measures it on a device, optionally
stores the measurement for the next predictor fit, and writes the folder with its manifest — all of it or
nothing (see :mod:`tailorkit.export.manifest` for the schema).

Two resolutions meet here. Latency tables and predictions are for the deployment input (OFA's ``r`` × ``r``);
the digits weights were trained on ``r / 8`` pixel images (``supernet.at_resolution``). The exported file has
the deployment shape — that is what is measured — and is verified at the digits shape: ONNX files get dynamic
height and width, TFLite interpreters are resized.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailorkit.core.documents import sha256_file
from tailorkit.core.errors import ConfigError, ModelFormatError, TailorError
from tailorkit.export import QUANTIZATIONS
from tailorkit.export.manifest import (
    ExportManifest,
    check_output_dir,
    file_entry,
    now,
    runtime_versions,
    staging_dir,
    write_manifest,
)
from tailorkit.export.onnx import (
    DEFAULT_SIMPLIFIER,
    SIMPLIFIERS,
    OnnxExporter,
    check_onnx,
    quantize_onnx_int8,
    simplify_onnx,
)
from tailorkit.export.verify import compare_outputs, run_batch
from tailorkit.search.supernet import (
    CHECKPOINT,
    RESOLUTION_SCALE,
    DigitsSplits,
    accuracy,
    at_resolution,
    calibrated_subnet,
    load_digits_splits,
    load_supernet,
    train_subnet,
)
from tailorkit.spaces.base import DIGITS_CLASSES

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite", "tvm")
FLOAT_MIN_AGREEMENT = 0.99
INT8_MIN_AGREEMENT = 0.95
FLOAT_MAX_ABS = 1e-3  # relative to max(1, |torch logits|): float runtimes differ from torch by ~1e-6
CALIBRATION_IMAGES = 128
Progress = Callable[[str], None]


class ExportError(TailorError):
    """The exported model does not behave like the torch model it came from."""


@dataclass(frozen=True)
class ExportOptions:
    """What ``tailor export`` was asked for. ``supernet`` or ``train_epochs`` gives the weights: with a
    supernet, ``train_epochs`` fine-tunes the extracted subnet; without one, it trains the subnet from scratch."""

    fmt: str = "onnx"
    quantize: str | None = None
    device: str | None = None
    verify: bool = True
    simplifier: str | None = DEFAULT_SIMPLIFIER
    supernet: str | Path | None = None
    train_epochs: int = 0
    seed: int = 0
    min_agreement: float | None = None
    refit: bool = False
    store_url: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ConfigError(f"unknown export format {self.fmt!r}; known: {', '.join(FORMATS)}")
        if self.fmt == "tvm" and self.device is None:
            raise ConfigError("--format tvm compiles for a tvm device's target: give --device NAME (a [devices.NAME] "
                              "with kind = \"tvm\" in tailor.toml)")
        if self.fmt == "tvm" and self.quantize:
            raise ConfigError("--quantize is for onnx and tflite exports; TVM compiles the float32 model")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, got {self.quantize!r}")
        if self.simplifier is not None and self.simplifier not in SIMPLIFIERS:
            raise ConfigError(f"--simplify must be one of {', '.join(SIMPLIFIERS)} or none, got {self.simplifier!r}")
        if self.train_epochs < 0:
            raise ConfigError("--train-epochs must be >= 0")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError("--min-agreement must be between 0 and 1")
        if self.refit and self.device is None:
            raise ConfigError("--refit stores the latency measured on --device; give a device")
        if self.refit and self.quantize:
            raise ConfigError("--refit stores latencies for the float32 tables; an int8 model's latency would "
                              "skew their correction")

    def require_weights(self) -> None:
        """An arch's export needs weights from a supernet or from training (a prune result brings its own)."""
        if self.supernet is None and self.train_epochs == 0:
            raise ConfigError("the exported model needs trained weights: give --supernet CKPT (a `tailor supernet "
                              "train` folder) or --train-epochs N to train it on digits")

    @property
    def agreement_threshold(self) -> float:
        if self.min_agreement is not None:
            return self.min_agreement
        return INT8_MIN_AGREEMENT if self.quantize else FLOAT_MIN_AGREEMENT


def digits_space(space: Any) -> Any:
    """The same space with the 10 digit classes (the tables' space has 1000, like ImageNet)."""
    return space.with_classes(DIGITS_CLASSES)


def deploy_resolution(space: Any, arch: Any) -> int:
    return int(space.input_shape(arch)[-1])


# -------------------------------------------------------------------------------------------- weights


def trained_subnet(space: Any, arch: Any, data: DigitsSplits, options: ExportOptions,
                   progress: Progress | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The arch's module with trained weights, and where they came from (for the manifest)."""
    r = deploy_resolution(space, arch)
    if options.supernet is not None:
        ckpt = Path(options.supernet)
        net, config, _ = load_supernet(ckpt)
        if config.space != space.name or float(config.width) != float(space.width):
            raise ConfigError(f"supernet {str(ckpt)!r} is {config.space} width {config.width}; the arch is "
                              f"{space.name} width {space.width}")
        _say(progress, "extracting the subnet and re-estimating its batch norm")
        module = calibrated_subnet(net, data, arch)
        weights: dict[str, Any] = {"kind": "supernet", "checkpoint": str(ckpt),
                                   "sha256": sha256_file(ckpt / CHECKPOINT), "bn_recalibrated": True,
                                   "finetune_epochs": options.train_epochs}
        if options.train_epochs:
            _say(progress, f"fine-tuning {options.train_epochs} epochs on digits")
            module = train_subnet(module, data, r, epochs=options.train_epochs, lr=0.01, seed=options.seed)
    else:
        _say(progress, f"training the subnet from scratch, {options.train_epochs} epochs on digits")
        torch.manual_seed(options.seed)
        module = train_subnet(digits_space(space).build(arch), data, r, epochs=options.train_epochs,
                              seed=options.seed)
        weights = {"kind": "trained", "epochs": options.train_epochs, "seed": options.seed}
    return module.eval().to(memory_format=torch.contiguous_format), weights


# --------------------------------------------------------------------------------------------- export


def _write_model(module: torch.nn.Module, space: Any, arch: Any, data: DigitsSplits, folder: Path,
                 options: ExportOptions, progress: Progress | None) -> tuple[str, dict[str, Any] | None]:
    """The model file in ``folder`` (its name) and the simplification report."""
    shape = space.input_shape(arch)
    example = torch.randn(*shape)
    r = deploy_resolution(space, arch)
    gen = torch.Generator().manual_seed(options.seed)
    rows = torch.randperm(len(data.train_y), generator=gen)[:CALIBRATION_IMAGES].tolist()
    # int8 ranges come from real training images at the shape the weights were trained on
    calibration = [digits_at(data.train_x[i:i + 1], r // RESOLUTION_SCALE) for i in rows] if options.quantize else []
    suffix = "-int8" if options.quantize else ""
    if options.fmt in ("onnx", "tvm"):
        name = f"model{suffix}.onnx"
        _say(progress, "exporting to ONNX")
        float_path = folder / ("model-float.onnx" if options.quantize else name)
        OnnxExporter().export(module, example, float_path, dynamic_spatial=True)
        check_onnx(float_path)
        simplified = None
        if options.simplifier:
            _say(progress, f"simplifying with {options.simplifier}")
            simplified = simplify_onnx(float_path, options.simplifier).to_dict()
            check_onnx(float_path)
        if options.quantize:
            _say(progress, "quantizing to int8 (static, per channel, QDQ)")
            quantize_onnx_int8(float_path, folder / name, [x.numpy() for x in calibration])
            float_path.unlink()
        return name, simplified
    from tailorkit.export.tflite import TfliteExporter

    name = f"model{suffix}.tflite"
    _say(progress, "converting to TFLite" + (" int8" if options.quantize else ""))
    TfliteExporter().export(module, example, folder / name, quantize=options.quantize, calibration=calibration)
    return name, None


def digits_at(x: torch.Tensor, size: int) -> torch.Tensor:
    """Digits images as the contiguous 3-channel ``size`` x ``size`` input of an exported file (the supernet's
    ``at_resolution`` names sizes by the resolution they stand in for, r / 8 pixels)."""
    return at_resolution(x, size * RESOLUTION_SCALE).contiguous()


def _verify(module: torch.nn.Module, path: Path, r: int, data: DigitsSplits,
            options: ExportOptions, tvm: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Torch and the runtime on the digits test split: accuracy of both, and their agreement. At the digits
    shape the weights were trained at; a TFLite graph whose reshapes fix its spatial size (SPOS's channel
    shuffle) cannot be resized, and is compared with torch at the deployment shape instead."""
    x, y = data.split("test")
    labels = y.numpy()
    inputs = digits_at(x, r // RESOLUTION_SCALE)
    note = None
    try:
        if tvm is not None:
            got, note = _tvm_outputs(tvm, path, inputs.numpy())
        else:
            got = run_batch(path, options.fmt, inputs.numpy())
    except ModelFormatError as exc:
        if options.fmt != "tflite" or "cannot run with input shape" not in str(exc):
            raise
        inputs = digits_at(x, r)
        got = run_batch(path, options.fmt, inputs.numpy())
        note = ("the TFLite graph fixes its spatial size, so torch and the runtime were compared at the deployment "
                "shape; the accuracy there is not the digits accuracy the weights were trained for")
    with torch.no_grad():
        reference = torch.cat([module(inputs[i:i + 256]) for i in range(0, len(inputs), 256)]).numpy()
    agreement = compare_outputs(reference, got)
    acc = {"dataset": "scikit-learn digits", "split": "test", "n": int(len(labels)),
           "input_shape": list(inputs.shape[1:]),
           "torch": round(float((reference.argmax(1) == labels).mean()), 6),
           "runtime": round(float((got.argmax(1) == labels).mean()), 6)}
    if note:
        acc["note"] = note
        acc["torch_at_digits_shape"] = round(accuracy(module, data, r, "test"), 6)
    max_abs = None if options.quantize else FLOAT_MAX_ABS * max(1.0, agreement.reference_scale)
    passed = agreement.top1_agreement >= options.agreement_threshold and (
        max_abs is None or agreement.max_abs_diff <= max_abs)
    verify = {**agreement.to_dict(), "min_agreement": options.agreement_threshold,
              "max_abs_tolerance": max_abs, "passed": passed}
    return acc, verify


def _tvm_outputs(tvm: Any, path: Path, inputs: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The ONNX file compiled by TVM at the digits shape, run on every input. On the device's target when this
    machine has that device; otherwise on llvm, which checks TVM's import and compilation of the model but not the
    target's own kernels (the manifest says so)."""
    from tailorkit.devices.tvm import TvmDevice

    runner, note = tvm, None
    if tvm.check() is not None:
        runner = TvmDevice(f"{tvm.name}-verify", target="llvm", python=str(tvm.python))
        note = (f"verified on llvm: {tvm.check()}; the {tvm.target} library itself was compiled but not run")
    try:
        with tempfile.TemporaryDirectory(prefix="tailor-tvm-verify-") as tmp:
            np.save(Path(tmp) / "x.npy", inputs)
            [result] = runner.infer(path, [Path(tmp) / "x.npy"], Path(tmp) / "y", rows=True)
            outputs = np.load(result)
    finally:
        if runner is not tvm:
            runner.close()
    return outputs, note


def _measure(path: Path, shape: tuple[int, ...], predicted: Mapping[str, Any] | None, options: ExportOptions,
             config: Any) -> Any:
    """The exported file measured on the device; in alternation with the predictor's speed reference when the
    prediction is of this very model on this device (see :func:`_comparable`) and the file is one the reference
    subnet can be built as (ONNX, TFLite)."""
    from tailorkit.profiler.api import measure_closed_loop

    reference = (predicted or {}).get("reference")
    use = reference is not None and options.fmt in ("onnx", "tflite") and _comparable(
        predicted or {}, options, options.device) is None
    return measure_closed_loop(path, shape, options.device or "", reference=reference if use else None,
                               config=config)


def arch_key(space: Any, arch: Any) -> str:
    return json.dumps(space.arch_to_dict(arch), sort_keys=True, separators=(",", ":"))


def _models_table(space: Any) -> str:
    from tailorkit.profiler.api import models_table_name

    return models_table_name(space.name, space.width)


def _store(space: Any, arch: Any, prof: Any, refit: Mapping[str, str]) -> None:
    from tailorkit.core.records import LatencyRecord
    from tailorkit.profiler.store import TableStore

    with TableStore(refit["store"]) as store:
        store.ensure_table(refit["table"], space.name, {"kind": "whole models", "width": space.width})
        store.add(LatencyRecord(table=refit["table"], key=refit["key"], device=prof.device,
                                settings=prof.settings, latency=prof.latency))


def export_arch(space: Any, arch: Any, out: str | Path, options: ExportOptions, *,
                source: Mapping[str, Any], predicted: Mapping[str, Any] | None = None, config: Any = None,
                progress: Progress | None = None, data: DigitsSplits | None = None) -> ExportManifest:
    """Export ``arch`` of ``space`` into the folder ``out`` (see the module docstring); returns the manifest.
    A failed verification raises :class:`ExportError` after nothing was written."""
    options.require_weights()
    return _export_module(space, arch, out, options, source=source, predicted=predicted, config=config,
                          progress=progress, data=data,
                          weights_for=lambda d: trained_subnet(space, arch, d, options, progress))


def _export_module(space: Any, arch: Any, out: str | Path, options: ExportOptions, *, source: Mapping[str, Any],
                   predicted: Mapping[str, Any] | None, config: Any, progress: Progress | None,
                   data: DigitsSplits | None,
                   weights_for: Callable[[DigitsSplits], tuple[torch.nn.Module, dict[str, Any]]]) -> ExportManifest:
    """The export of a network of ``arch``'s shape whose weights ``weights_for`` provides (after every cheap
    check: device, format, output folder)."""
    from tailorkit.core.config import load_config

    if not space.buildable:
        raise ConfigError(f"space {space.name!r} has no modules to export here (its latencies come from public "
                          "tables)")
    config = config or load_config()
    target_device = None
    if options.device is not None:  # an unknown or mismatched device fails before minutes of export work
        from tailorkit.devices import create_device

        target_device = create_device(config.device(options.device))
        runs = target_device.model_format
        if options.fmt == "tvm" and target_device.kind != "tvm":
            raise ConfigError(f"--format tvm compiles for a tvm device; {options.device!r} is a "
                              f"{target_device.kind} device")
        if runs != options.fmt and options.fmt != "tvm":
            raise ConfigError(f"device {options.device!r} runs {runs} models, not {options.fmt}; export with "
                              f"--format {runs} or measure on a device that runs {options.fmt} (e.g. "
                              f"{'litert' if options.fmt == 'tflite' else 'cpu'})")
    tvm = target_device if options.fmt == "tvm" else None
    check_output_dir(out, options.force)  # before minutes of training, not after
    data = data or load_digits_splits()
    shape = tuple(space.input_shape(arch))
    r = deploy_resolution(space, arch)
    module, weights = weights_for(data)
    try:
        return _export_into(space, arch, out, options, source, predicted, config, progress, data, module, weights,
                            shape, r, tvm)
    finally:
        if tvm is not None:
            tvm.close()


def _export_into(space: Any, arch: Any, out: str | Path, options: ExportOptions, source: Mapping[str, Any],
                 predicted: Mapping[str, Any] | None, config: Any, progress: Progress | None, data: DigitsSplits,
                 module: torch.nn.Module, weights: dict[str, Any], shape: tuple[int, ...], r: int,
                 tvm: Any) -> ExportManifest:
    prof = None
    with staging_dir(out, options.force) as stage:
        name, simplified = _write_model(module, space, arch, data, stage, options, progress)
        path = stage / name
        files = [file_entry(stage, name)]
        compiled = None
        if tvm is not None:  # the library beside the ONNX file it was compiled from
            _say(progress, f"compiling with TVM for {tvm.target}")
            report = tvm.export_library(path, stage / "model.so", {"input": shape})
            compiled = {"library": "model.so", "target": report["target"], "compile_s": round(report["compile_s"], 3),
                        "tvm": tvm.info().runtime_version, "tuning": tvm.tuning, "input_shape": list(shape)}
            files.insert(0, file_entry(stage, "model.so"))
        acc, verify = {"torch": round(accuracy(module, data, r, "test"), 6)}, None
        if options.verify:
            where = "TVM" if tvm is not None else f"{options.fmt} runtime"
            _say(progress, f"verifying in {where} on {len(data.test_y)} digits test images")
            acc, verify = _verify(module, path, r, data, options, tvm)
            if not verify["passed"]:
                raise ExportError(
                    f"the exported {options.fmt} model disagrees with torch: top-1 agreement "
                    f"{verify['top1_agreement']:.4f} (need >= {verify['min_agreement']}), max |diff| "
                    f"{verify['max_abs_diff']:.3g}" + (f" (tolerance {verify['max_abs_tolerance']:.3g})"
                                                       if verify["max_abs_tolerance"] is not None else "")
                    + "; nothing was written")
        measured = refit = None
        unavailable = tvm.check() if tvm is not None else None
        if unavailable is not None:  # a library for a GPU this machine lacks: compiled, verified on llvm, unmeasured
            measured = {"device": options.device, "latency_ms": None, "error_pct": None, "input_shape": list(shape),
                        "note": f"not measured: {unavailable}"}
        elif options.device is not None:
            _say(progress, f"measuring on {options.device}")
            prof = _measure(path, shape, predicted, options, config)
            measured = _measured_entry(prof, shape, predicted, options)
            if options.refit:
                refit = {"store": options.store_url or config.store_url,
                         "table": _models_table(space), "key": arch_key(space, arch)}
        manifest = ExportManifest(
            format=options.fmt, quantize=options.quantize,
            space={"name": space.name, "width": space.width}, arch=space.arch_to_dict(arch),
            input={"name": "input", "shape": list(shape), "layout": "NCHW", "dtype": "float32",
                   "verified_shape": [1, *acc.get("input_shape", [])] if verify else None,
                   "preprocessing": "digits standardised with the training mean/std, bilinear to r/8 px, "
                                    "grey repeated to 3 channels"},
            files=files, source=dict(source), weights=weights, accuracy=acc, compiled=compiled,
            verify=verify, simplify=simplified, predicted=dict(predicted) if predicted else None,
            measured=measured, refit=refit, versions=runtime_versions(), created=now())
        write_manifest(stage, manifest)
    if refit is not None:  # stored once the folder is in place: the store never holds a run of a failed export
        try:
            _store(space, arch, prof, refit)
        except TailorError as exc:
            manifest = replace(manifest, refit=None)
            write_manifest(Path(out), manifest)
            raise type(exc)(f"the export is in {str(out)!r}, but its latency was not stored: {exc}") from None
    return manifest


def _comparable(predicted: Mapping[str, Any], options: ExportOptions, device: str | None) -> str | None:
    """``None`` when ``predicted`` is a prediction of this very model on ``device``, else why it is not."""
    predicted_device = predicted.get("device")
    if options.quantize:
        return "the prediction is for the float32 model, so no error against it is computed"
    if predicted_device is not None and predicted_device != device:
        return f"the prediction is for device {predicted_device!r}, so no error against it is computed"
    return None


def _measured_entry(measured: Any, shape: tuple[int, ...], predicted: Mapping[str, Any] | None,
                    options: ExportOptions) -> dict[str, Any]:
    """The measurement for the manifest; its error only against a prediction of this very model on this device."""
    if predicted is None or predicted.get("latency_ms") is None:
        return {**measured.entry(None), "input_shape": list(shape)}
    why_not = _comparable(predicted, options, measured.device.name)
    entry = measured.entry(None if why_not else float(predicted["latency_ms"]))
    entry["input_shape"] = list(shape)
    if why_not is not None:
        entry["note"] = why_not
    elif predicted.get("device") is None:
        entry["note"] = "the predictor does not name its device; the error assumes it is this one"
    return entry


def _say(progress: Progress | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        progress(message)


# ------------------------------------------------------------------------------------------ front doors


def predicted_for(result: Any, options: ExportOptions) -> dict[str, Any] | None:
    """The predicted latency of the exported model: the search's predictor file asked again for the winner with
    the digits head (the search scored the space's own 1000-class head), else the search's own number."""
    ms = result.best.get("latency_ms")
    if ms is None:
        return None
    entry: dict[str, Any] = {"latency_ms": float(ms), "source": result.latency_source}
    if result.predictor and result.predictor.get("device"):
        entry["device"] = result.predictor["device"]
    if result.predictor and result.predictor.get("reference"):
        entry["reference"] = result.predictor["reference"]
    path = (result.predictor or {}).get("path")
    if path is not None:
        from tailorkit.search.api import build_best

        space, arch = build_best(result)
        if Path(path).is_file() and sha256_file(Path(path)) == result.predictor.get("sha256") and space.buildable:
            again = predict_arch(space, arch, path)
            entry.update(latency_ms=again["latency_ms"], search_latency_ms=float(ms))
            if "note" in again:
                entry["note"] = again["note"]
        else:
            entry["note"] = (f"the search's prediction, for the space's own classifier: its predictor file "
                             f"{path!r} is gone or changed, so the exported model was not predicted again")
    if options.quantize:
        entry["note"] = "predicted for the float32 model; the latency source was measured in float32"
    return entry


def export_search_result(path: str | Path, out: str | Path, options: ExportOptions, *, config: Any = None,
                         progress: Progress | None = None) -> ExportManifest:
    from tailorkit.search.api import build_best, load_search_result

    result = load_search_result(path)
    space, arch = build_best(result)
    source = {"kind": "search-result", "path": str(path), "sha256": sha256_file(Path(path))}
    return export_arch(space, arch, out, options, source=source, predicted=predicted_for(result, options),
                       config=config, progress=progress)


def export_prune_result(path: str | Path, out: str | Path, options: ExportOptions, *, config: Any = None,
                        progress: Progress | None = None) -> ExportManifest:
    """The pruned network of a ``tailor prune`` result (its fine-tuned weights, checked against their checksum),
    exported like a searched subnet; the manifest's ``arch`` is the subnet that was pruned and ``weights`` says
    how (kept widths)."""
    from tailorkit.search.prune import load_prune_result, pruned_base, pruned_model

    if options.supernet is not None or options.train_epochs:
        raise ConfigError("a prune result carries its own fine-tuned weights; drop --supernet and --train-epochs")
    if options.refit:
        raise ConfigError("--refit stores whole-model latencies by arch of the space; a pruned network is not one "
                          "of its archs, so there is nowhere to store it")
    result = load_prune_result(path)
    space, arch = pruned_base(result)
    weights = {"kind": "pruned", "result": str(path), "sha256": result.weights["sha256"],
               "keep_eighths": result.keep_eighths, "widths": result.widths, "base_widths": result.base_widths,
               "base": result.base, "finetune_epochs": result.accuracy.get("finetune_epochs")}
    predicted: dict[str, Any] = {"latency_ms": float(result.predicted["latency_ms"]), "source": result.latency_source}
    if result.predicted.get("device"):
        predicted["device"] = result.predicted["device"]
    reference = (result.predicted.get("calibration") or {}).get("reference")
    if reference is not None:  # the unpruned subnet the calibration measured the prunings against
        predicted["reference"] = reference
    if options.quantize:
        predicted["note"] = "predicted for the float32 model"
    source = {"kind": "prune-result", "path": str(path), "sha256": sha256_file(Path(path))}
    # the weights are loaded (and their checksum checked) after the cheap checks on device and output folder
    return _export_module(space, arch, out, options, source=source, predicted=predicted, config=config,
                          progress=progress, data=None, weights_for=lambda _d: (pruned_model(path)[3], weights))


def predict_arch(space: Any, arch: Any, predictor: str | Path) -> dict[str, Any]:
    """A predictor file's latency for ``arch`` as exported: with the digits head. A lookup table without that
    head's entry predicts the space's own classifier, and the entry says so."""
    from tailorkit.search.api import head_mismatch_note, latency_source
    from tailorkit.search.objectives import PredictorLatency

    source, info = latency_source(space, predictor)
    note = None
    if space.buildable:
        digits = digits_space(space)
        if _lacks_only_the_head(source.predictor, space, digits, arch):
            note = (f"predicted with the table's {space.num_classes}-class classifier: the table has no entry for "
                    f"the exported model's {DIGITS_CLASSES}-class one (`tailor table build` measures it)")
        else:
            space, source = digits, PredictorLatency(digits, source.predictor)
    ms = float(np.asarray(source(space.genes([arch])))[0])
    head_note = head_mismatch_note(info, space)
    note = "; ".join(n for n in (note, head_note) if n) or None
    info = info or {}
    return {"latency_ms": ms, "source": source.description,
            **{k: info[k] for k in ("device", "reference") if info.get(k) is not None},
            **({"note": note} if note else {})}



def _lacks_only_the_head(predictor: Any, space: Any, digits: Any, arch: Any) -> bool:
    """A lookup table that has every op of ``arch`` but the digits classifier (one that interpolates, or a
    learned predictor, scores any op)."""
    keys = getattr(predictor, "keys_", None)
    if keys is None or getattr(predictor, "interpolate", False):
        return False
    missing = {op.key for op in digits.ops(arch)} - set(keys)
    return bool(missing) and not missing & {op.key for op in space.ops(arch)}


def rerun_accuracy(folder: str | Path, manifest: ExportManifest) -> float:
    """The exported file's digits test accuracy at the shape it was verified at, run again in its runtime
    (``tailor verify``)."""
    x, y = load_digits_splits().split("test")
    shape = manifest.input.get("verified_shape") or manifest.input["shape"]
    try:
        size = int(shape[-1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"the manifest's verified input shape {shape!r} is not an image shape") from None
    inputs = digits_at(x, size).numpy()
    if manifest.format == "tvm":  # the library is compiled for the deployment shape: rerun its ONNX source in TVM
        from tailorkit.devices.tvm import TvmDevice

        source = next((f["name"] for f in manifest.files if f["name"].endswith(".onnx")), None)
        if source is None:
            raise ConfigError("the tvm export lists no ONNX source to verify")
        runner = TvmDevice("verify", target="llvm")
        try:
            got, _ = _tvm_outputs(runner, Path(folder) / source, inputs)
        finally:
            runner.close()
    else:
        got = run_batch(Path(folder) / manifest.model_file(), manifest.format, inputs)
    return float((got.argmax(1) == y.numpy()).mean())
