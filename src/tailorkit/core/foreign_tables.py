"""Readers for two published latency lookup tables that are not in OFA's YAML layout, turning them into
:class:`~tailorkit.core.table.LatencyTable` objects with canonical :class:`~tailorkit.core.records.OpSpec` keys.
Only facts about the source projects were taken from them (key layouts, layer configurations); no code.

ProxylessNAS mobile (``read_proxylessnas_yaml``)
------------------------------------------------
``mobile_trim.yaml`` from han-cai/files, the table mit-han-lab/proxylessnas loads in
``search/utils/latency_estimator.py``: Google Pixel 1, ``{count, mean, var}`` per op, milliseconds. Its keys
are OFA-like but older, and two of its op types mean something other than tailorkit's fixed OFA types, so each
key is rewritten (the published key stays findable through ``meta["source_keys"]``):

* ``Conv-input:224x224x3-output:112x112x32``
  → ``conv-input:224x224x3-output:112x112x32-kernel:3-stride:2-act:relu``
* ``Conv_1-input:7x7x320-output:7x7x1280`` → ``conv-input:7x7x320-output:7x7x1280-act:relu``
* ``Logits-input:7x7x1280-output:1000`` → unchanged
* ``expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0``
  → ``expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0``

Why:

* ``Conv`` is ProxylessNAS's first layer, a 3×3 conv + BN + **ReLU6** (stride 2 at 224 px). Tailorkit's ``Conv``
  is OFA-MobileNetV3's first layer and pins h-swish, so keeping the name would claim the wrong activation. The
  generic ``conv`` type states kernel 3, the stride (read from the shapes) and the activation instead.
* ``Conv_1`` is the 1×1 feature-mix conv + BN + ReLU6; tailorkit's ``Conv_1`` pins h-swish too, so it becomes
  a generic 1×1 stride-1 ``conv`` (kernel and stride are defaults and so absent from the key).
* ``Logits`` is "everything after Conv_1": global average pooling + the linear classifier, no activation. Its
  hyper-parameters are what tailorkit's ``Logits`` pins (kernel 1, stride 1, no activation) and the 7×7 input
  says the pooling is included, so the key is kept as published. It can be looked up but not rebuilt:
  tailorkit's ``Logits`` module is the classifier alone (OFA's tables time the pooling as ``AvgPool2D``).
* ``expanded_conv``: ProxylessNAS writes the expansion *ratio*; tailorkit (like OFA's later tables) writes the
  middle width in channels, ``round(input channels × ratio)`` as ProxylessNAS's ``MBInvertedConvLayer``
  computes it, so ``expand:1`` on 32 input channels becomes ``expand:32`` (ratio 1: no 1×1 expansion conv, the
  same convention as OFA's first block). ProxylessNAS has no squeeze-excitation (``se:0``) and uses ReLU6, not
  h-swish (``hs:0``). ``idskip`` is the identity shortcut, kept as published.
* ReLU6 is recorded as ``relu``: tailorkit's activations are none / relu / hswish, and ``hs:0`` in OFA's keys
  means "the ReLU family" as well. ``meta["activation"]`` says so.

``std`` is ``sqrt(var)``; ``n`` is ``count``. A missing ``var`` or ``count`` reads as std 0 / n 1, like
:meth:`LatencyTable.read` does for OFA files; a missing ``mean`` is an error.

FBNet on a Raspberry Pi 4 (``read_fbnet_rpi_json``)
----------------------------------------------------
``lookup_table_pi.json`` from jh88/fbnet @ 5bd12ab8c7f6befc61efd8619d71e710db794c2b, a Keras (TF 2) FBNet for
CIFAR-10, measured on a Raspberry Pi 4 Model B 4 GB by ``generate_lookup_table.py``. Facts from that commit:

* The file is one list entry per element of ``get_super_net(num_classes=10, bn=True,
  config={'ss': [1,1,2,2,1,1,1,1,1]})``: ``conv1``, ``bn1``, the 22 searchable layers, ``conv2`` (1×1 to 1984),
  ``bn2``, global pooling and ``Dense`` — 28 entries, ``null`` for the 6 fixed ones. The training notebook
  builds the supernet with the same config and reads this file.
* Input 32×32×3; stem 3×3 conv to 16 channels at stride 1; stages (width, repeats, first stride) = (16, 1, 1),
  (24, 4, 2), (32, 4, 2), (64, 4, 1), (112, 4, 1), (184, 4, 1), (352, 1, 1); later repeats have stride 1.
  ``padding='same'`` makes a stride-2 output ``ceil(h / 2)``: 32 → 16 → 8.
* Candidates per layer, in this order: ``k3_e1``, ``k3_e1_g2``, ``k3_e3``, ``k3_e6``, ``k5_e1``, ``k5_e1_g2``,
  ``k5_e3``, ``k5_e6`` and then ``skip`` (a Keras identity layer). ``skip`` is offered only where the layer keeps
  its shape (stride 1 and input channels == output channels), so the 6 layers that change shape (searchable
  layers 1, 5, 9, 13, 17 and 21) have 8 numbers and the other 16 have 9.
* A block is 1×1 conv to ``c_in × e`` channels + BN (+ channel shuffle for 2 groups) + ReLU, k×k depthwise
  conv at the layer's stride + BN + ReLU, 1×1 conv + BN (+ shuffle); for ``_g2`` both 1×1 convs have 2 groups.
  The 1×1 expansion conv exists even for ``e1``. A residual is added when stride is 1 and ``c_in == c_out``.
* Each number is ``get_latency``: one untimed call, then the mean of 10 timed *eager* calls of the Keras layer,
  in microseconds; the next layer's input is the output of candidate 0. Eager per-op dispatch dominates these
  numbers (about 9–28 ms per block even at 8×8, 0.23 ms for the identity), so they are not kernel times.

This candidate order is the same as tailorkit's FBNet ``BLOCKS`` (the HELP / HW-NAS-Bench order, ``skip`` last),
so index ``i`` of a tailorkit ``FBNetArch`` layer selects ``meta["layers"][layer][i]`` — except that tailorkit's
space allows ``skip`` in every layer and this table has no ``skip`` in the 6 shape-changing layers (and its
layer shapes are jh88's, not necessarily HW-NAS-Bench's). The table's space is therefore ``fbnet-cifar10-jh88``,
not ``fbnet``.

Keys: ``fbnet_block-input:H×W×C-output:…-kernel:k[-stride:2]-expand:<c_in × e>[-groups:2][-idskip:1]-act:relu``
(``expand`` in channels like the OFA keys; ``groups`` is the 1×1 convs' group count) and
``fbnet_skip-input:…-output:…`` for the identity. The three stride-1 repeats of a stage have identical shapes,
so they produce the same 9 keys: such a key's entry holds every layer's number as one sample (``n`` = number
of layers, ``number`` = 10 calls per sample, ``mean`` / ``std`` across them), because a key names an op, not a
position. ``meta["merged"]`` lists the layers behind each such key and ``meta["layer_ms"]`` keeps every layer's
own numbers (ms, candidate order), so jh88's exact per-layer sum can still be computed.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from tailorkit.core.errors import TableError
from tailorkit.core.records import Latency, OpSpec, split_key
from tailorkit.core.table import LatencyTable


class ForeignReader(Protocol):
    def __call__(self, path: str | os.PathLike[str], name: str | None = None) -> LatencyTable: ...


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TableError(f"{what} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot read {what} file {str(path)!r}: {exc}") from None


def _non_negative(value: Any, what: str, where: str) -> float:
    # bool is an int subclass; YAML and Python's json also let NaN and infinity through
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise TableError(f"{where}: {what} must be a finite number >= 0, got {value!r}")
    return float(value)


def _canonical(spec: OpSpec) -> str:
    """The spec's key, checked to parse back to itself (from_key raises a TableError naming it otherwise), so a
    table never holds a key that the rest of tailorkit cannot read."""
    key = spec.key
    OpSpec.from_key(key)
    return key


# ----------------------------------------------------------------------------------------- ProxylessNAS

PROXYLESS_SPACE = "proxylessnas-mobile"
_PROXYLESS_SOURCE = ("han-cai/files proxylessnas/mobile_trim.yaml, loaded by mit-han-lab/proxylessnas "
                     "search/utils/latency_estimator.py")
_PROXYLESS_TYPES = ("Conv", "Conv_1", "Logits", "expanded_conv")
_PROXYLESS_BLOCK_FIELDS = frozenset({"expand", "kernel", "stride", "idskip"})
_PROXYLESS_VALUE_FIELDS = frozenset({"count", "mean", "var"})
_DIMS_RE = re.compile(r"^[1-9][0-9]*(x[1-9][0-9]*)*$")


def _dims(text: str | None, name: str, key: str, rank: int) -> tuple[int, ...]:
    if text is None:
        raise TableError(f"ProxylessNAS key {key!r} has no {name}:")
    if not _DIMS_RE.match(text):
        raise TableError(f"ProxylessNAS key {key!r}: {name}:{text} is not a shape like 112x112x16")
    dims = tuple(int(d) for d in text.split("x"))
    if len(dims) != rank:
        raise TableError(f"ProxylessNAS key {key!r}: {name} must have {rank} dimensions, got {text}")
    return dims


def _positive_int(text: str, name: str, key: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise TableError(f"ProxylessNAS key {key!r}: {name}:{text} must be a whole number >= 1")
    return int(text)


def _fits_stride(src: tuple[int, ...], dst: tuple[int, ...], stride: int) -> bool:
    # ProxylessNAS writes output sizes as ``size // stride`` while a padded conv gives ``ceil(size / stride)``;
    # both agree at 224 px, and either is a faithful key, so both are accepted.
    return all(dst[i] in (src[i] // stride, -(-src[i] // stride)) for i in (0, 1))


def _proxyless_spec(key: str) -> OpSpec:
    try:
        op_type, attrs = split_key(key)
    except ValueError as exc:
        raise TableError(f"ProxylessNAS key {key!r}: {exc}") from None
    if op_type not in _PROXYLESS_TYPES:
        raise TableError(f"ProxylessNAS key {key!r}: unknown op type {op_type!r}; known: "
                         f"{', '.join(_PROXYLESS_TYPES)}")
    src = _dims(attrs.pop("input", None), "input", key, 3)
    dst = _dims(attrs.pop("output", None), "output", key, 1 if op_type == "Logits" else 3)
    if op_type == "expanded_conv":
        if {"se", "hs"} & set(attrs):
            raise TableError(f"ProxylessNAS key {key!r} has se/hs: it is an OFA MobileNetV3 key; read that file "
                             "with LatencyTable.read")
        if set(attrs) != _PROXYLESS_BLOCK_FIELDS:
            missing = sorted(_PROXYLESS_BLOCK_FIELDS - set(attrs))
            extra = sorted(set(attrs) - _PROXYLESS_BLOCK_FIELDS)
            raise TableError(f"ProxylessNAS key {key!r}: expanded_conv needs expand, kernel, stride, idskip"
                             + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
        ratio = _positive_int(attrs["expand"], "expand", key)
        kernel = _positive_int(attrs["kernel"], "kernel", key)
        stride = _positive_int(attrs["stride"], "stride", key)
        if attrs["idskip"] not in ("0", "1"):
            raise TableError(f"ProxylessNAS key {key!r}: idskip:{attrs['idskip']} must be 0 or 1")
        idskip = attrs["idskip"] == "1"
        if not _fits_stride(src, dst, stride):
            raise TableError(f"ProxylessNAS key {key!r}: output {dst} is not input {src} at stride {stride}")
        if idskip and (src != dst or stride != 1):
            raise TableError(f"ProxylessNAS key {key!r}: an identity shortcut (idskip:1) needs stride 1 and equal "
                             "input and output shapes")
        return OpSpec("expanded_conv", src, dst, kernel=kernel, stride=stride, expand=round(src[2] * ratio),
                      idskip=idskip, se=False, activation="relu")
    if attrs:
        raise TableError(f"ProxylessNAS key {key!r}: {op_type} keys have only input and output, got "
                         f"{sorted(attrs)}")
    if op_type == "Logits":
        return OpSpec.ofa_fixed("Logits", src, dst)
    if op_type == "Conv_1":
        if src[:2] != dst[:2]:
            raise TableError(f"ProxylessNAS key {key!r}: Conv_1 is a 1x1 stride-1 conv, but the spatial size "
                             "changes")
        return OpSpec("conv", src, dst, activation="relu")
    # Conv: the key leaves the stride to the shapes (2 in the mobile space)
    stride = max(1, round(src[0] / dst[0]))
    if not _fits_stride(src, dst, stride):
        raise TableError(f"ProxylessNAS key {key!r}: output {dst} is not input {src} at any stride")
    return OpSpec("conv", src, dst, kernel=3, stride=stride, activation="relu")


def _proxyless_latency(key: str, value: Any) -> Latency:
    where = f"entry {key!r}"
    if not isinstance(value, dict):
        raise TableError(f"{where} must be a mapping with count, mean, var; got {type(value).__name__}")
    unknown = set(value) - _PROXYLESS_VALUE_FIELDS
    if unknown:
        raise TableError(f"{where} has unknown fields {sorted(map(str, unknown))} (a ProxylessNAS entry has "
                         "count, mean, var)")
    if value.get("mean") is None:
        raise TableError(f"{where} has no mean")
    mean = _non_negative(value["mean"], "mean", where)
    var = _non_negative(value["var"], "var", where) if value.get("var") is not None else 0.0
    count = value.get("count")
    if count is None:
        n = 1
    elif isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise TableError(f"{where}: count must be a whole number >= 1, got {count!r}")
    else:
        n = count
    return Latency(mean=mean, std=math.sqrt(var), n=n)


def read_proxylessnas_yaml(path: str | os.PathLike[str], name: str | None = None) -> LatencyTable:
    """ProxylessNAS's mobile lookup table (``mobile_trim.yaml``) with canonical keys; see the module docstring
    for the key mapping. ``meta["source_keys"]`` maps each published key to its canonical key."""
    path = Path(path)
    text = _read_text(path, "ProxylessNAS table")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TableError(f"{str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"{str(path)!r} is not a ProxylessNAS table: expected a mapping of op keys to "
                         "{count, mean, var}")
    entries: dict[str, Latency] = {}
    source_keys: dict[str, str] = {}
    for raw_key, value in data.items():
        if not isinstance(raw_key, str):
            raise TableError(f"{str(path)!r}: op key {raw_key!r} is not a string")
        key = _canonical(_proxyless_spec(raw_key))
        if key in entries:
            first = next(k for k, v in source_keys.items() if v == key)
            raise TableError(f"{str(path)!r}: keys {first!r} and {raw_key!r} both name the op {key!r}")
        entries[key] = _proxyless_latency(raw_key, value)
        source_keys[raw_key] = key
    return LatencyTable(
        name=name or path.stem, entries=entries, space=PROXYLESS_SPACE,
        meta={"format": "proxylessnas", "source": _PROXYLESS_SOURCE, "source_file": path.name,
              "device": "Google Pixel 1", "unit": "ms", "source_unit": "ms", "std": "sqrt(var)",
              "activation": "ReLU6 throughout, recorded as relu (tailorkit has none/relu/hswish)",
              "source_keys": source_keys})


# ------------------------------------------------------------------------------------------------ FBNet

FBNET_RPI_SPACE = "fbnet-cifar10-jh88"
_FBNET_SOURCE = "jh88/fbnet @ 5bd12ab8c7f6befc61efd8619d71e710db794c2b lookup_table_pi.json"


@dataclass(frozen=True)
class FBNetCandidate:
    """One of jh88's conv candidates: k×k depthwise, 1×1 convs to ``c_in × expand`` and back, ``groups``
    groups in both 1×1 convs."""

    kernel: int
    expand: int
    groups: int

    @property
    def name(self) -> str:
        return f"k{self.kernel}_e{self.expand}" + (f"_g{self.groups}" if self.groups > 1 else "")


@dataclass(frozen=True)
class FBNetLayer:
    """A searchable layer of jh88's CIFAR supernet; ``position`` indexes the 28-entry lookup list."""

    position: int
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    stride: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.input_shape == self.output_shape


# jh88's zip(es, ks, gs) order; ``skip`` follows where the layer keeps its shape
FBNET_RPI_CANDIDATES = (FBNetCandidate(3, 1, 1), FBNetCandidate(3, 1, 2), FBNetCandidate(3, 3, 1),
                        FBNetCandidate(3, 6, 1), FBNetCandidate(5, 1, 1), FBNetCandidate(5, 1, 2),
                        FBNetCandidate(5, 3, 1), FBNetCandidate(5, 6, 1))
FBNET_RPI_BLOCKS = tuple(c.name for c in FBNET_RPI_CANDIDATES) + ("skip",)
_FBNET_INPUT = (32, 32, 3)
_FBNET_STEM = (16, 1)  # channels, stride (ImageNet's 2 was set to 1 for CIFAR)
_FBNET_STAGES = ((16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 1), (112, 4, 1), (184, 4, 1), (352, 1, 1))
_FBNET_LEADING = 2  # conv1, bn1
_FBNET_TRAILING = 4  # conv2, bn2, global pooling, dense
_FBNET_SAMPLE_CALLS = 10  # get_latency's n: each number is the mean of 10 timed calls


def _fbnet_layers() -> tuple[FBNetLayer, ...]:
    size, channels = -(-_FBNET_INPUT[0] // _FBNET_STEM[1]), _FBNET_STEM[0]
    layers = []
    for width, repeats, first_stride in _FBNET_STAGES:
        for j in range(repeats):
            stride = first_stride if j == 0 else 1
            out = -(-size // stride)  # padding='same'
            layers.append(FBNetLayer(_FBNET_LEADING + len(layers), (size, size, channels), (out, out, width), stride))
            size, channels = out, width
    return tuple(layers)


FBNET_RPI_LAYERS = _fbnet_layers()
_FBNET_LENGTH = _FBNET_LEADING + len(FBNET_RPI_LAYERS) + _FBNET_TRAILING


def _fbnet_keys(layer: FBNetLayer) -> list[str]:
    c_in, c_out = layer.input_shape[2], layer.output_shape[2]
    specs = [OpSpec("fbnet_block", layer.input_shape, layer.output_shape, kernel=c.kernel, stride=layer.stride,
                    expand=c_in * c.expand, groups=c.groups, idskip=layer.stride == 1 and c_in == c_out,
                    activation="relu") for c in FBNET_RPI_CANDIDATES]
    if layer.has_skip:
        specs.append(OpSpec("fbnet_skip", layer.input_shape, layer.output_shape))
    return [_canonical(s) for s in specs]


def read_fbnet_rpi_json(path: str | os.PathLike[str], name: str | None = None) -> LatencyTable:
    """jh88/fbnet's Raspberry Pi 4 lookup table (``lookup_table_pi.json``, µs) in ms with canonical keys;
    ``meta["layers"]`` gives each searchable layer's keys in candidate order. See the module docstring."""
    path = Path(path)
    text = _read_text(path, "FBNet lookup table")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or len(data) != _FBNET_LENGTH:
        got = f"a list of {len(data)}" if isinstance(data, list) else type(data).__name__
        raise TableError(f"{str(path)!r} is not jh88's FBNet lookup table: expected a list of {_FBNET_LENGTH} "
                         f"entries (null for fixed layers), got {got}")
    searchable = {layer.position for layer in FBNET_RPI_LAYERS}
    for position, item in enumerate(data):
        if position not in searchable and item is not None:
            raise TableError(f"{str(path)!r}: entry {position} is a fixed layer and must be null, got {item!r}")
    samples: dict[str, list[float]] = {}
    merged: dict[str, list[int]] = {}
    layers: list[list[str]] = []
    layer_ms: list[list[float]] = []
    for index, layer in enumerate(FBNET_RPI_LAYERS):
        where = f"{str(path)!r}: searchable layer {index} (entry {layer.position})"
        values = data[layer.position]
        keys = _fbnet_keys(layer)
        if not isinstance(values, list) or len(values) != len(keys):
            got = f"{len(values)} numbers" if isinstance(values, list) else repr(values)
            raise TableError(f"{where} needs {len(keys)} numbers (one per candidate"
                             + (", skip last" if layer.has_skip else "; no skip, the shape changes")
                             + f"), got {got}")
        ms = [_non_negative(v, f"candidate {j}", where) / 1000.0 for j, v in enumerate(values)]
        for key, value in zip(keys, ms, strict=True):
            samples.setdefault(key, []).append(value)
            merged.setdefault(key, []).append(index)
        layers.append(keys)
        layer_ms.append(ms)
    entries = {key: Latency.from_samples(vals, outlier="none", number=_FBNET_SAMPLE_CALLS)
               for key, vals in samples.items()}
    return LatencyTable(
        name=name or path.stem, entries=entries, space=FBNET_RPI_SPACE,
        meta={"format": "fbnet-rpi", "source": _FBNET_SOURCE, "source_file": path.name,
              "device": "Raspberry Pi 4 Model B 4GB", "runtime": "TensorFlow 2 Keras layers called eagerly, batch 1",
              "unit": "ms", "source_unit": "us", "input_shape": list(_FBNET_INPUT),
              "blocks": list(FBNET_RPI_BLOCKS), "layers": layers, "layer_ms": layer_ms,
              "source_positions": [layer.position for layer in FBNET_RPI_LAYERS],
              "merged": {k: v for k, v in merged.items() if len(v) > 1},
              "samples": "a source number is the mean of 10 eager calls (number=10); n counts the layers that "
                         "measured the same op"})


FOREIGN_FORMATS: dict[str, ForeignReader] = {
    "proxylessnas": read_proxylessnas_yaml,
    "fbnet-rpi": read_fbnet_rpi_json,
}
