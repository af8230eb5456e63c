"""The facade: names in (a model, a device, a space), records out."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from tailorkit.core.config import TailorConfig, load_config
from tailorkit.core.errors import ConfigError
from tailorkit.core.lazy import torch_threads
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency, PairedLatency
from tailorkit.devices import Device, create_device
from tailorkit.profiler.models import prepare_model
from tailorkit.profiler.store import TableStore
from tailorkit.profiler.tables import TableBuildReport, TableProgress
from tailorkit.profiler.tables import build_table as _build_table
from tailorkit.spaces import create_space, spaces
from tailorkit.spaces.base import DIGITS_CLASSES


@dataclass(frozen=True)
class ModelProfile:
    model: str
    device: DeviceInfo
    settings: BenchmarkSettings
    latency: Latency
    input_shapes: Mapping[str, tuple[int, ...]]
    ops: tuple[OpLatency, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "device": self.device.to_dict(), "settings": self.settings.to_dict(),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "latency_ms": self.latency.summary(),
            "ops": None if self.ops is None else [
                {"name": o.name, "op_type": o.op_type, "provider": o.provider, **o.latency.summary()}
                for o in self.ops],
        }


def open_device(device: str | Device, config: TailorConfig | None = None) -> Device:
    if isinstance(device, Device):
        return device
    config = config or load_config()
    return create_device(config.device(device))


def profile(model: str | Path | nn.Module, device: str | Device = "cpu", *,
            settings: BenchmarkSettings | None = None, per_op: bool = False,
            input_shapes: Mapping[str, Sequence[int]] | None = None, resolution: int = 224,
            config: TailorConfig | None = None, as_exported: bool = False) -> ModelProfile:
    """End-to-end latency of ``model`` on ``device`` and, with ``per_op``, the runtime's per-node profile.
    The end-to-end numbers come from runs without the profiler attached, which would inflate them.
    ``as_exported``: a torch module is measured in the form `tailor export` writes (:func:`prepare_model`)."""
    config = config or load_config()
    dev = open_device(device, config)
    settings = settings or config.settings(dev.name if dev.name in config.devices else None)
    with tempfile.TemporaryDirectory(prefix="tailor-profile-") as tmp, dev, torch_threads(1):
        prepared = _prepare(model, Path(tmp), dev, input_shapes, resolution, as_exported)
        latency = dev.run_model(prepared.path, settings, prepared.input_shapes)
        ops = tuple(dev.profile_ops(prepared.path, settings, prepared.input_shapes)) if per_op else None
        return ModelProfile(model=prepared.label, device=dev.info(settings), settings=settings, latency=latency,
                            input_shapes=prepared.input_shapes, ops=ops)


def _prepare(model: str | Path | nn.Module, workdir: Path, dev: Device,
             input_shapes: Mapping[str, Sequence[int]] | None, resolution: int, as_exported: bool = False) -> Any:
    """The file ``dev`` runs for ``model`` (see :func:`prepare_model`), or a ConfigError when it is a model file
    of the other format."""
    prepared = prepare_model(model, workdir, input_shapes=input_shapes, resolution=resolution,
                             fmt=dev.model_format, as_exported=as_exported)
    fmt = prepared.path.suffix.lower().lstrip(".")
    if fmt in ("onnx", "tflite") and fmt != dev.model_format:
        # a .tflite file cannot become ONNX (ONNX files become TFLite through export/onnx_import)
        raise ConfigError(f"device {dev.name!r} runs {dev.model_format} models, and {prepared.label!r} is "
                          f"{fmt}; profile the built-in or torch model instead (it is converted), export it "
                          f"with `tailor export --format {dev.model_format}`, or pick a device that runs {fmt}")
    return prepared


@dataclass(frozen=True)
class PairedProfile:
    model: str
    reference: str
    device: DeviceInfo
    settings: BenchmarkSettings
    latency: PairedLatency


def profile_paired(model: str | Path | nn.Module, reference: str | Path | nn.Module, device: str | Device = "cpu",
                   *, settings: BenchmarkSettings | None = None,
                   input_shapes: Mapping[str, Sequence[int]] | None = None,
                   reference_shapes: Mapping[str, Sequence[int]] | None = None, pairs: int | None = None,
                   resolution: int = 224, config: TailorConfig | None = None,
                   as_exported: bool = False) -> PairedProfile:
    """``model`` measured in alternation with ``reference`` on ``device`` (:class:`PairedLatency`): the ratio
    of the two holds still while a shared machine's speed moves. ``pairs`` defaults to the device's own.
    ``as_exported`` applies to ``model`` (:func:`prepare_model`); the reference is only a yardstick, always
    prepared the same way."""
    config = config or load_config()
    dev = open_device(device, config)
    settings = settings or config.settings(dev.name if dev.name in config.devices else None)
    with tempfile.TemporaryDirectory(prefix="tailor-profile-") as tmp, dev, torch_threads(1):
        for name in ("model", "reference"):
            (Path(tmp) / name).mkdir()
        target = _prepare(model, Path(tmp) / "model", dev, input_shapes, resolution, as_exported)
        ref = _prepare(reference, Path(tmp) / "reference", dev, reference_shapes, resolution)
        latency = dev.run_paired(target.path, ref.path, settings, target.input_shapes, ref.input_shapes,
                                 **({} if pairs is None else {"pairs": pairs}))
        return PairedProfile(model=target.label, reference=ref.label, device=dev.info(settings), settings=settings,
                             latency=latency)


def profile_archs_paired(space: Any, arch: Any, reference: Any, device: str | Device = "cpu", *,
                         settings: BenchmarkSettings | None = None,
                         config: TailorConfig | None = None) -> PairedLatency:
    """``arch`` of ``space`` measured in alternation with the ``reference`` arch (both built fresh), the arch
    in the form `tailor export` writes it: what a calibration's line is later compared with."""
    return profile_paired(space.build(arch), space.build(reference), device, settings=settings, config=config,
                          input_shapes={"input": space.input_shape(arch)},
                          reference_shapes={"input": space.input_shape(reference)}, as_exported=True).latency


@dataclass(frozen=True)
class ClosedLoopMeasurement:
    """A model measured after a prediction of it: its own latency now and, when the predictor was calibrated
    against a speed reference, the model's ratio to that reference × the reference's latency at calibration —
    the latency the model would have had at the machine's speed when the predictor was calibrated."""

    device: DeviceInfo
    settings: BenchmarkSettings
    latency: Latency
    reference: Mapping[str, Any] | None = None

    def entry(self, predicted_ms: float | None) -> dict[str, Any]:
        """The ``measured`` fields of a search result or export manifest (errors against ``predicted_ms``)."""
        mean = self.latency.mean

        def error(ms: float) -> float | None:
            return None if predicted_ms is None or ms <= 0 else 100.0 * (float(predicted_ms) - ms) / ms

        entry: dict[str, Any] = {"device": self.device.name, "fingerprint": self.device.fingerprint,
                                 "latency_ms": self.latency.summary(), "error_pct": error(mean)}
        if self.reference is not None:
            ref = dict(self.reference)
            ref["error_pct"] = error(ref["latency_ms"])
            entry["speed_reference"] = ref
        return entry


def measure_closed_loop(model: str | Path | nn.Module, input_shape: Sequence[int], device: str | Device, *,
                        reference: Mapping[str, Any] | None = None,
                        config: TailorConfig | None = None) -> ClosedLoopMeasurement:
    """Measure ``model`` (a module, in the form `tailor export` writes it, or its exported file) on ``device``;
    with ``reference`` (a lookup-table predictor's ``reference_``: space, width, arch, ms) in alternation with
    that reference subnet."""
    shapes = {"input": tuple(input_shape)}
    if reference is None:
        prof = profile(model, device, input_shapes=shapes, config=config, as_exported=True)
        return ClosedLoopMeasurement(prof.device, prof.settings, prof.latency)
    space = create_space(reference["space"], float(reference["width"]))
    if reference.get("num_classes") is not None:
        space = space.with_classes(int(reference["num_classes"]))
    ref_arch = space.arch_from_dict(reference["arch"])
    paired = profile_paired(model, space.build(ref_arch), device, config=config, as_exported=True,
                            input_shapes=shapes, reference_shapes={"input": space.input_shape(ref_arch)})
    lat = paired.latency
    now_ms = float(lat.reference.median if lat.reference.median is not None else lat.reference.mean)
    cal_ms = float(reference["ms"])
    return ClosedLoopMeasurement(paired.device, paired.settings, lat.target, {
        "arch": reference["arch"], "calibration_ms": cal_ms, "now_ms": now_ms, "slowdown": now_ms / cal_ms,
        "ratio": lat.ratio, "ratio_spread": lat.ratio_spread, "pairs": lat.pairs, "latency_ms": lat.ratio * cal_ms})


def buildable_space(name: str, width: float) -> Any:
    """A space whose ops can be measured here, or a ConfigError that says why not."""
    factory = spaces.get(name)
    if not getattr(factory, "buildable", False):
        buildable = [n for n in spaces if getattr(spaces.get(n), "buildable", False)]
        raise ConfigError(f"space {name!r} has no ops to measure here (its latencies come from public tables); "
                          f"spaces with ops: {', '.join(buildable)}")
    return factory(width=width)


def table_name(space: str, width: float, resolution: int) -> str:
    return f"{space}-w{width:g}-r{resolution}"


def models_table_name(space: str, width: float) -> str:
    """The store table of whole-model latencies of a space (key: the arch's canonical JSON), which
    ``tailor export --refit`` appends to and ``tailor predictor calibrate --stored`` fits on."""
    return f"models:{space}-w{width:g}"


def build_table(space: str, device: str | Device = "cpu", *, resolution: int, width: float = 1.0,
                store: str | TableStore | None = None, settings: BenchmarkSettings | None = None,
                name: str | None = None, config: TailorConfig | None = None,
                progress: Callable[[TableProgress], None] | None = None,
                limit: int | None = None, classes: Sequence[int] = (DIGITS_CLASSES,)) -> TableBuildReport:
    """Measure every distinct op of ``space`` at ``resolution`` into the store (resuming what is there), at most
    ``limit`` of them this time. The space's classifier has 1000 classes (ImageNet, as published tables);
    ``classes`` adds the classifier for each of these class counts (by default the digits head the supernets
    train, so the models `tailor export` writes are predicted with their own head)."""
    config = config or load_config()
    space_obj = buildable_space(space, width)
    ops = space_obj.all_ops(resolution)  # every argument is checked before the store is opened or created
    keys = {op.key for op in ops}
    for n in dict.fromkeys(classes):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"class counts must be whole numbers >= 1, got {n!r}")
        extra = [op for op in space_obj.with_classes(n).all_ops(resolution) if op.key not in keys]
        ops = [*ops, *extra]
        keys |= {op.key for op in extra}
    dev = open_device(device, config)
    settings = settings or config.settings(dev.name if dev.name in config.devices else None)
    owns_store = not isinstance(store, TableStore)
    db = store if isinstance(store, TableStore) else TableStore(store or config.store_url)
    try:
        with dev:
            return _build_table(ops, name or table_name(space, width, resolution), dev, db, settings,
                                space=space, meta={"space": space, "width": width, "resolution": resolution},
                                progress=progress, limit=limit)
    finally:
        if owns_store:
            db.close()
