"""The records every stage passes around: frozen, JSON-serialisable, no behaviour beyond their own invariants."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError, TableError

# --------------------------------------------------------------------------------------------------- OpSpec

_ACTIVATIONS = ("none", "relu", "hswish")

# OFA's per-type key layouts. Their first five types have fixed hyper-parameters that the key leaves out, so
# the spec must hold exactly these values for the key to stay one-to-one with the op it names.
_OFA_FIXED: dict[str, dict[str, Any]] = {
    "Conv": {"kernel": 3, "activation": "hswish"},
    "Conv_1": {"kernel": 1, "stride": 1, "activation": "hswish"},
    "Conv_2": {"kernel": 1, "stride": 1, "activation": "hswish"},
    "AvgPool2D": {"kernel": 0, "stride": 1, "activation": "none"},
    "Logits": {"kernel": 1, "stride": 1, "activation": "none"},
}
_OFA_EXPANDED_CONV = "expanded_conv"
# Generic ops append every non-default field in this order.
_GENERIC_FIELDS = ("kernel", "stride", "expand", "groups", "idskip", "se", "act")
_DEFAULTS = {"kernel": 1, "stride": 1, "expand": 0, "groups": 1, "idskip": False, "se": False,
             "activation": "none", "dtype": "float32"}
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SHAPE_RE = re.compile(r"^[0-9]+(x[0-9]+)*$")


def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def split_key(key: str) -> tuple[str, dict[str, str]]:
    """``type-name:value-name:value…`` into the type and its attributes; ValueError on a malformed part or a
    repeated name. Shared by canonical keys and the foreign table layouts that write keys the same way."""
    op_type, *tokens = key.split("-")
    attrs: dict[str, str] = {}
    for token in tokens:
        name, sep, value = token.partition(":")
        if not sep or not name or not value:
            raise ValueError(f"part {token!r} is not name:value")
        if name in attrs:
            raise ValueError(f"{name!r} appears twice")
        attrs[name] = value
    return op_type, attrs


@dataclass(frozen=True)
class OpSpec:
    """One kernel instance. Shapes are channels-last (H, W, C) like the OFA keys, whatever layout the
    runtime uses; ``expand`` is the bottleneck's middle width in channels (0: no bottleneck)."""

    op_type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    expand: int = 0
    groups: int = 1
    idskip: bool = False
    se: bool = False
    activation: str = "none"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "output_shape", tuple(int(d) for d in self.output_shape))
        if not _TYPE_RE.match(self.op_type):
            raise ValueError(f"op type {self.op_type!r} must be an identifier (letters, digits, _)")
        if not self.input_shape or not self.output_shape or min(self.input_shape + self.output_shape) <= 0:
            raise ValueError(f"{self.op_type}: shapes must be non-empty and positive")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {_ACTIVATIONS}")
        fixed = _OFA_FIXED.get(self.op_type)
        if fixed is not None:
            wrong = {k: getattr(self, k) for k, v in fixed.items() if getattr(self, k) != v}
            if wrong or self.expand or self.groups != 1 or self.idskip or self.se:
                raise ValueError(f"{self.op_type} has fixed hyper-parameters {fixed}; got {wrong or self}")
        if self.op_type == _OFA_EXPANDED_CONV and self.activation == "none":
            raise ValueError("expanded_conv needs activation relu or hswish (its key has hs:0|1)")

    @classmethod
    def ofa_fixed(cls, op_type: str, input_shape: Sequence[int], output_shape: Sequence[int]) -> OpSpec:
        """One of OFA's fixed layers (Conv, Conv_1, Conv_2, AvgPool2D, Logits) with its implied settings."""
        params = dict(_OFA_FIXED[op_type])
        if op_type == "Conv":  # the first conv's stride is the only thing its key implies through shapes
            if min(list(input_shape) + list(output_shape)) <= 0:
                raise ValueError(f"{op_type}: shapes must be positive")
            params["stride"] = max(1, round(input_shape[0] / output_shape[0]))
        return cls(op_type, tuple(input_shape), tuple(output_shape), **params)

    @property
    def key(self) -> str:
        """Canonical, stable key, identical to OFA's lookup-table keys for OFA's op types."""
        parts = [self.op_type, f"input:{_shape_str(self.input_shape)}", f"output:{_shape_str(self.output_shape)}"]
        if self.op_type == _OFA_EXPANDED_CONV:
            parts += [f"expand:{self.expand}", f"kernel:{self.kernel}", f"stride:{self.stride}",
                      f"idskip:{int(self.idskip)}", f"se:{int(self.se)}", f"hs:{int(self.activation == 'hswish')}"]
        elif self.op_type not in _OFA_FIXED:
            values = {"kernel": self.kernel, "stride": self.stride, "expand": self.expand, "groups": self.groups,
                      "idskip": self.idskip, "se": self.se, "act": self.activation}
            defaults = dict(_DEFAULTS, act=_DEFAULTS["activation"])
            for name in _GENERIC_FIELDS:
                if values[name] != defaults[name]:
                    value = values[name]
                    parts.append(f"{name}:{int(value) if isinstance(value, bool) else value}")
        if self.dtype != _DEFAULTS["dtype"]:
            parts.append(f"dtype:{self.dtype}")
        return "-".join(parts)

    @classmethod
    def from_key(cls, key: str) -> OpSpec:
        """Inverse of :attr:`key`; raises TableError naming the key when it is malformed."""
        try:
            spec = cls._parse_key(key)
        except (ValueError, KeyError) as exc:
            raise TableError(f"malformed op key {key!r}: {exc}") from None
        if spec.key != key:
            raise TableError(f"malformed op key {key!r}: not canonical (expected {spec.key!r})")
        return spec

    @classmethod
    def _parse_key(cls, key: str) -> OpSpec:
        if not isinstance(key, str) or not key:
            raise ValueError("empty key")
        op_type, attrs = split_key(key)
        shapes = []
        for name in ("input", "output"):
            if name not in attrs:
                raise ValueError(f"missing {name}:")
            if not _SHAPE_RE.match(attrs[name]):
                raise ValueError(f"{name}:{attrs[name]} is not a shape like 56x56x24")
            shapes.append(tuple(int(d) for d in attrs.pop(name).split("x")))
        dtype = attrs.pop("dtype", "float32")
        if op_type in _OFA_FIXED:
            if attrs:
                raise ValueError(f"{op_type} keys have no {sorted(attrs)}")
            return replace(cls.ofa_fixed(op_type, *shapes), dtype=dtype)
        if op_type == _OFA_EXPANDED_CONV:
            required = ("expand", "kernel", "stride", "idskip", "se", "hs")
            missing = [n for n in required if n not in attrs]
            extra = sorted(set(attrs) - set(required))
            if missing or extra:
                raise ValueError(f"expanded_conv needs {required}" + (f"; missing {missing}" if missing else "")
                                 + (f"; unknown {extra}" if extra else ""))
            flags = {n: _flag(attrs[n], n) for n in ("idskip", "se", "hs")}
            return cls(op_type, shapes[0], shapes[1], kernel=int(attrs["kernel"]), stride=int(attrs["stride"]),
                       expand=int(attrs["expand"]), idskip=flags["idskip"], se=flags["se"],
                       activation="hswish" if flags["hs"] else "relu", dtype=dtype)
        unknown = sorted(set(attrs) - set(_GENERIC_FIELDS))
        if unknown:
            raise ValueError(f"unknown attributes {unknown}")
        kwargs: dict[str, Any] = {}
        for name, value in attrs.items():
            if name == "act":
                kwargs["activation"] = value
            elif name in ("idskip", "se"):
                kwargs[name] = _flag(value, name)
            else:
                kwargs[name] = int(value)
        return cls(op_type, shapes[0], shapes[1], dtype=dtype, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpSpec:
        return cls(**data)


def _flag(value: str, name: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError(f"{name}:{value} must be 0 or 1")
    return value == "1"


# --------------------------------------------------------------------------------------------- Settings


OUTLIER_RULES = ("none", "iqr")


@dataclass(frozen=True)
class BenchmarkSettings:
    """How one measurement is taken: ``warmup`` untimed inferences, then ``runs`` timed samples, each the mean
    of ``number`` back-to-back inferences (timeit's and TVM's number/repeat). ``number=0`` picks the smallest
    count that makes a sample last ``min_sample_ms`` (from the warm-up timings), so sub-millisecond ops are
    not dominated by timer and call overhead; models slower than that get one inference per sample. With
    ``target_cv``, more batches of ``runs`` samples are added until the kept samples' CV is below it or
    ``max_runs`` samples exist (by default 10 × ``runs``)."""

    warmup: int = 10
    runs: int = 100
    number: int = 0
    min_sample_ms: float = 3.0
    threads: int = 1
    outlier: str = "iqr"
    target_cv: float | None = None
    max_runs: int | None = None
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("warmup", "runs", "number", "threads"):
            _check_int(name, getattr(self, name), minimum=1 if name in ("runs", "threads") else 0)
        if self.max_runs is not None:
            _check_int("max_runs", self.max_runs, minimum=self.runs, what=f"runs ({self.runs})")
        _check_real("min_sample_ms", self.min_sample_ms, 0.0, 60_000.0)
        _check_real("timeout_s", self.timeout_s, 1e-3, 7 * 24 * 3600.0)
        if self.target_cv is not None:
            _check_real("target_cv", self.target_cv, 1e-12, 10.0)
        if self.outlier not in OUTLIER_RULES:
            raise ConfigError(f"outlier rule must be one of {OUTLIER_RULES}, got {self.outlier!r}")

    @property
    def sample_limit(self) -> int:
        """Most samples a ``target_cv`` measurement may take (``max_runs``, by default 10 × ``runs``)."""
        return self.max_runs if self.max_runs is not None else 10 * self.runs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkSettings:
        return cls(**data)

    @property
    def fingerprint(self) -> str:
        """Identity of what the numbers mean; the timeout does not change them."""
        data = self.to_dict()
        data.pop("timeout_s")
        return _digest(data)


# -------------------------------------------------------------------------------------------- DeviceInfo


@dataclass(frozen=True)
class DeviceInfo:
    """What was measured on. ``properties`` are stable facts (execution provider, optimisation level, SoC);
    ``state`` is what varies between runs (governor, frequency, temperature) and stays out of the fingerprint."""

    name: str
    kind: str
    hardware: str
    runtime: str
    runtime_version: str
    tailorkit_version: str
    threads: int = 1
    affinity: tuple[int, ...] | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    state: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.affinity is not None:
            object.__setattr__(self, "affinity", tuple(sorted(int(c) for c in self.affinity)))
        object.__setattr__(self, "properties", {str(k): str(v) for k, v in sorted(dict(self.properties).items())})
        object.__setattr__(self, "state", {str(k): str(v) for k, v in sorted(dict(self.state).items())})

    @property
    def fingerprint(self) -> str:
        """Same hardware + runtime + configuration → same fingerprint, whatever the device is called locally."""
        return _digest({
            "kind": self.kind, "hardware": self.hardware, "runtime": self.runtime,
            "runtime_version": self.runtime_version, "threads": self.threads,
            "affinity": list(self.affinity) if self.affinity is not None else None,
            "properties": dict(self.properties),
        })

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["affinity"] = list(self.affinity) if self.affinity is not None else None
        data["properties"] = dict(self.properties)
        data["state"] = dict(self.state)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceInfo:
        data = dict(data)
        if data.get("affinity") is not None:
            data["affinity"] = tuple(data["affinity"])
        return cls(**data)


# ---------------------------------------------------------------------------------------------- Latency


@dataclass(frozen=True)
class Latency:
    """Statistics of one measurement in milliseconds. ``n`` counts the samples the statistics use (after the
    outlier rule), ``n_total`` all timed samples; each sample is the mean of ``number`` inferences; ``samples``
    keeps the raw ones when the device gives them. Imported tables often know only mean, std and count, so
    the order statistics may be ``None``."""

    mean: float
    std: float
    n: int
    median: float | None = None
    p90: float | None = None
    min: float | None = None
    max: float | None = None
    n_total: int | None = None
    number: int = 1
    samples: tuple[float, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.mean, bool) or not isinstance(self.mean, (int, float)) or not (
                math.isfinite(self.mean) and self.mean >= 0):
            raise ValueError(f"latency mean must be a finite number >= 0, got {self.mean!r}")
        if isinstance(self.std, bool) or not isinstance(self.std, (int, float)) or not (
                math.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"latency std must be a finite number >= 0, got {self.std!r}")
        for name in ("n", "n_total", "number"):
            value = getattr(self, name)
            if value is None and name == "n_total":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"latency {name} must be a whole number >= 1, got {value!r}")
        for name in ("median", "p90", "min", "max"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise ValueError(f"latency {name} must be a finite number >= 0, got {value!r}")

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean > 0 else 0.0

    @classmethod
    def from_samples(cls, samples_ms: Iterable[float], outlier: str = "iqr", number: int = 1) -> Latency:
        raw = np.asarray(list(samples_ms), dtype=np.float64)
        if raw.size == 0:
            raise ValueError("no samples")
        kept = raw
        if outlier == "iqr" and raw.size >= 8:
            # Slow outliers come from preemption and interrupts; nothing makes a kernel run faster than it
            # can, so only the upper Tukey fence is applied.
            q1, q3 = np.percentile(raw, [25, 75])
            kept = raw[raw <= q3 + 1.5 * (q3 - q1)]
        elif outlier not in OUTLIER_RULES:
            raise ValueError(f"unknown outlier rule {outlier!r}")
        return cls(
            mean=float(kept.mean()), std=float(kept.std(ddof=1)) if kept.size > 1 else 0.0, n=int(kept.size),
            median=float(np.median(kept)), p90=float(np.percentile(kept, 90)), min=float(kept.min()),
            max=float(kept.max()), n_total=int(raw.size), number=number, samples=tuple(float(s) for s in raw),
        )

    def summary(self) -> dict[str, Any]:
        """The statistics without the raw samples (for tables, JSON output, the store's columns)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        data["cv"] = self.cv
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self.summary()
        data.pop("cv")
        data["samples"] = list(self.samples)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Latency:
        data = {k: v for k, v in data.items() if k != "cv"}
        data["samples"] = tuple(data.get("samples") or ())
        return cls(**data)


@dataclass(frozen=True)
class PairedLatency:
    """A model measured in alternation with a fixed reference model, block by block. ``ratio`` is the median
    over block pairs of target / reference (each block's median): a shared machine's speed moves within a
    fraction of a second (benchmarks/results/drift.md), and the ratio of two blocks run back to back carries
    that out, where each model's own latency does not. ``ratio_spread`` is the interquartile range of the pair
    ratios over ``ratio``."""

    target: Latency
    reference: Latency
    ratio: float
    ratio_spread: float
    pairs: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio > 0):
            raise ValueError(f"latency ratio must be a finite number > 0, got {self.ratio!r}")
        if not (math.isfinite(self.ratio_spread) and self.ratio_spread >= 0):
            raise ValueError(f"ratio spread must be a finite number >= 0, got {self.ratio_spread!r}")
        if isinstance(self.pairs, bool) or not isinstance(self.pairs, int) or self.pairs < 1:
            raise ValueError(f"pairs must be a whole number >= 1, got {self.pairs!r}")

    @classmethod
    def from_blocks(cls, target_blocks: Sequence[Sequence[float]], reference_blocks: Sequence[Sequence[float]],
                    outlier: str = "iqr", number: int = 1, reference_number: int = 1) -> PairedLatency:
        """From alternating blocks of samples (ms): block ``i`` of the reference ran right before block ``i`` of
        the target."""
        if not target_blocks or len(target_blocks) != len(reference_blocks) or not all(
                len(b) for b in (*target_blocks, *reference_blocks)):
            raise ValueError("paired blocks must be non-empty and as many for the target as for the reference")
        ratios = np.array([np.median(t) / np.median(r) for t, r in zip(target_blocks, reference_blocks,
                                                                        strict=True)])
        ratio = float(np.median(ratios))
        q1, q3 = np.percentile(ratios, [25, 75])
        return cls(target=Latency.from_samples([s for b in target_blocks for s in b], outlier, number),
                   reference=Latency.from_samples([s for b in reference_blocks for s in b], outlier,
                                                  reference_number),
                   ratio=ratio, ratio_spread=float((q3 - q1) / ratio), pairs=len(ratios))

    def summary(self) -> dict[str, Any]:
        return {"target": self.target.summary(), "reference": self.reference.summary(), "ratio": self.ratio,
                "ratio_spread": self.ratio_spread, "pairs": self.pairs}


@dataclass(frozen=True)
class OpLatency:
    """One row of a per-op profile: a node of the model as the runtime executed it."""

    name: str
    op_type: str
    latency: Latency
    provider: str = ""


@dataclass(frozen=True)
class LatencyRecord:
    """One stored measurement: an op (or a whole model, ``op=None``) on a device with given settings."""

    table: str
    key: str
    device: DeviceInfo
    settings: BenchmarkSettings
    latency: Latency
    op: OpSpec | None = None
    timestamp: float = field(default_factory=time.time)


def _check_int(name: str, value: Any, minimum: int, what: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {what or minimum}, got {value}")


def _check_real(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ExportArtifact:
    """A model file as exported for a runtime, with what is needed to verify and re-measure it."""

    path: str
    format: str
    checksum: str
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    device: str | None = None
    predicted_ms: float | None = None
    measured_ms: float | None = None
