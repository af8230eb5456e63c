"""MnasNet's factorized hierarchical space (Tan et al., 2019): a MobileNetV2 skeleton of 7 blocks after a 3×3
stride-2 stem of 32 channels, each block searched on its own and repeated over its layers.

Per block: the conv op (``OPS``: a regular conv, a depthwise-separable conv, or an MBConv with expand ratio 3
or 6), kernel 3 or 5, squeeze-excite or not, the skip op (an identity residual where the layer keeps its shape,
or none), the output width (0.75, 1.0 or 1.25 × the skeleton's) and the number of layers (the skeleton's −1,
+0 or +1, at least 1). The skeleton (MobileNetV2): widths 16, 24, 32, 64, 96, 160, 320; layers 1, 2, 3, 4,
3, 3, 1; first-layer strides 1, 2, 2, 2, 1, 2, 1; then a 1×1 conv to 1 280, pooling and the classifier.

Two simplifications, stated: squeeze-excite is part of MBConv only (MnasNet-A1 uses it there), so for the
other two conv ops the SE choice changes nothing; the paper's pooling skip is not offered (its shape rules are
not published), so the skip op is identity or none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.core.records import OpSpec
from tailorkit.spaces.base import (
    Space,
    check_fields,
    check_input,
    decode_one_hot_fields,
    make_divisible,
    one_hot_fields,
    strict_ints,
)

OPS = ("conv", "sepconv", "mbconv3", "mbconv6")
KERNELS = (3, 5)
SE = (0, 1)
SKIPS = ("identity", "none")
WIDTH_RATIOS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
SKELETON_WIDTHS = (16, 24, 32, 64, 96, 160, 320)
SKELETON_LAYERS = (1, 2, 3, 4, 3, 3, 1)
SKELETON_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STEM, HEAD = 32, 1280
N_BLOCKS = len(SKELETON_WIDTHS)
# each field: its choices (indices are stored), in the order of the gene vector
_FIELDS = (("op", OPS), ("kernel", KERNELS), ("se", SE), ("skip", SKIPS), ("width", WIDTH_RATIOS),
           ("layers", LAYER_DELTAS))


@dataclass(frozen=True)
class MnasNetArch:
    """Per block, an index into the choices of each field (``OPS``, ``KERNELS``, ``SE``, ``SKIPS``,
    ``WIDTH_RATIOS``, ``LAYER_DELTAS``)."""

    op: tuple[int, ...]
    kernel: tuple[int, ...]
    se: tuple[int, ...]
    skip: tuple[int, ...]
    width: tuple[int, ...]
    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        for name, choices in _FIELDS:
            values = getattr(self, name)
            ints = strict_ints(values) or ()
            if len(ints) != N_BLOCKS or any(not 0 <= v < len(choices) for v in ints):
                raise ConfigError(f"MnasNet arch {name} must be {N_BLOCKS} indices into {choices}, got {values!r}")
            object.__setattr__(self, name, ints)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


class MnasNetSpace(Space):
    name = "mnasnet"
    buildable = True
    encoding_name = "one-hot per block and field"

    def __init__(self, width: float = 1.0, num_classes: int = 1000, resolution: int = 224) -> None:
        if width != 1.0:
            raise ConfigError(f"MnasNet's space searches widths per block; the multiplier must be 1.0, got {width}")
        check_input("MnasNet", resolution, num_classes)
        self.width, self.num_classes, self.resolution = width, num_classes, resolution

    def with_classes(self, num_classes: int) -> MnasNetSpace:
        """The same space with another classifier (the ops differ only in its key)."""
        return type(self)(width=self.width, num_classes=num_classes, resolution=self.resolution)

    # ------------------------------------------------------------------------------------------ archs

    @property
    def size(self) -> int:
        per_block = 1
        for _, choices in _FIELDS:
            per_block *= len(choices)
        return per_block ** N_BLOCKS

    @property
    def encoding_length(self) -> int:
        return N_BLOCKS * sum(len(c) for _, c in _FIELDS)

    def sample(self, rng: np.random.Generator) -> MnasNetArch:
        return MnasNetArch(**{name: tuple(int(v) for v in rng.integers(0, len(c), N_BLOCKS)) for name, c in _FIELDS})

    def baseline(self) -> MnasNetArch:
        """The MobileNetV2 skeleton itself: MBConv6, 3×3, no SE, identity skip, base widths and depths."""
        return MnasNetArch(op=(3,) * N_BLOCKS, kernel=(0,) * N_BLOCKS, se=(0,) * N_BLOCKS, skip=(0,) * N_BLOCKS,
                           width=(1,) * N_BLOCKS, layers=(1,) * N_BLOCKS)

    def gene_choices(self) -> list[tuple[int, ...]]:
        return [tuple(range(len(c))) for _, c in _FIELDS for _ in range(N_BLOCKS)]

    def genes(self, archs: Sequence[MnasNetArch], rng: np.random.Generator | None = None) -> np.ndarray:
        return np.array([[v for name, _ in _FIELDS for v in getattr(arch, name)] for arch in archs],
                        dtype=np.int64).reshape(len(archs), len(_FIELDS) * N_BLOCKS)

    def from_genes(self, genes: np.ndarray) -> list[MnasNetArch]:
        rows = np.asarray(genes, dtype=np.int64).reshape(-1, len(_FIELDS), N_BLOCKS)
        return [MnasNetArch(**{name: tuple(int(v) for v in row) for (name, _), row in zip(_FIELDS, parts, strict=True)})
                for parts in rows]

    def live_genes(self, genes: np.ndarray) -> np.ndarray:
        """SE only matters on MBConv blocks, the skip op only where some layer of the block keeps its shape.
        (A layer delta of -1 and 0 on a one-layer block build the same network; both stay choices, since
        sampled and user archs use either.)"""
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(_FIELDS), N_BLOCKS)
        live = np.ones(genes.shape, dtype=bool)
        field = [name for name, _ in _FIELDS]
        live[:, field.index("se")] = np.isin(genes[:, field.index("op")], [OPS.index("mbconv3"),
                                                                              OPS.index("mbconv6")])
        for i, arch in enumerate(self.from_genes(genes.reshape(len(genes), -1))):
            residual = np.zeros(N_BLOCKS, dtype=bool)
            for b, _h, cin, cout, stride in self._plan(arch):
                residual[b] |= stride == 1 and cin == cout
            live[i, field.index("skip")] = residual
        return live.reshape(len(genes), -1)

    def encode_batch(self, archs: Sequence[MnasNetArch]) -> np.ndarray:
        fields = [np.array([getattr(a, name) for a in archs], dtype=np.intp).reshape(len(archs), N_BLOCKS)
                  for name, _ in _FIELDS]
        return one_hot_fields(fields, [len(c) for _, c in _FIELDS])

    def decode(self, vec: np.ndarray) -> MnasNetArch:
        picks = decode_one_hot_fields(vec, N_BLOCKS, [len(c) for _, c in _FIELDS], f"a {self.name}")
        return MnasNetArch(**{name: p for (name, _), p in zip(_FIELDS, picks, strict=True)})

    def arch_to_dict(self, arch: MnasNetArch) -> dict[str, Any]:
        return arch.to_dict()

    def arch_from_dict(self, data: Mapping[str, Any]) -> MnasNetArch:
        check_fields(data, [name for name, _ in _FIELDS], "a MnasNet arch")
        for name, _ in _FIELDS:
            if not isinstance(data[name], (list, tuple)):
                raise ConfigError(f"MnasNet arch {name} must be a list of {N_BLOCKS} indices, got {data[name]!r}")
        return MnasNetArch(**{name: tuple(data[name]) for name, _ in _FIELDS})

    # ---------------------------------------------------------------------------------------------- ops

    @staticmethod
    def _layer(h: int, cin: int, cout: int, stride: int, op: str, kernel: int, se: bool, skip: str) -> OpSpec:
        out = -(-h // stride)
        residual = skip == "identity" and stride == 1 and cin == cout
        if op == "conv":
            return OpSpec("conv", (h, h, cin), (out, out, cout), kernel=kernel, stride=stride, idskip=residual,
                          activation="relu")
        if op == "sepconv":
            return OpSpec("sepconv", (h, h, cin), (out, out, cout), kernel=kernel, stride=stride, idskip=residual,
                          activation="relu")
        ratio = 3 if op == "mbconv3" else 6
        return OpSpec("expanded_conv", (h, h, cin), (out, out, cout), kernel=kernel, stride=stride,
                      expand=cin * ratio, idskip=residual, se=se, activation="relu")

    def _plan(self, arch: MnasNetArch) -> list[tuple[int, int, int, int, int]]:
        """(block, input size, input channels, output channels, stride) of every layer."""
        plan, h, cin = [], self.resolution // 2, STEM
        for b in range(N_BLOCKS):
            cout = make_divisible(SKELETON_WIDTHS[b] * WIDTH_RATIOS[arch.width[b]])
            layers = max(1, SKELETON_LAYERS[b] + LAYER_DELTAS[arch.layers[b]])
            for j in range(layers):
                stride = SKELETON_STRIDES[b] if j == 0 else 1
                plan.append((b, h, cin, cout, stride))
                h, cin = -(-h // stride), cout
        return plan

    def ops(self, arch: MnasNetArch) -> list[OpSpec]:
        r = self.resolution
        ops = [OpSpec("conv", (r, r, 3), (r // 2, r // 2, STEM), kernel=3, stride=2, activation="relu")]
        plan = self._plan(arch)
        for b, h, cin, cout, stride in plan:
            ops.append(self._layer(h, cin, cout, stride, OPS[arch.op[b]], KERNELS[arch.kernel[b]],
                                   bool(SE[arch.se[b]]), SKIPS[arch.skip[b]]))
        h, c = -(-plan[-1][1] // plan[-1][4]), plan[-1][3]
        return ops + [OpSpec("conv", (h, h, c), (h, h, HEAD), activation="relu"),
                      OpSpec.ofa_fixed("AvgPool2D", (h, h, HEAD), (1, 1, HEAD)),
                      OpSpec.ofa_fixed("Logits", (1, 1, HEAD), (self.num_classes,))]

    def all_ops(self, resolution: int | None = None) -> list[OpSpec]:
        """Every op any arch can run: each block's layers at every width of the block before it (its input)
        and its own, every op / kernel / SE / skip choice, and every depth position."""
        if resolution is not None and resolution != self.resolution:
            raise ConfigError(f"this MnasNet space runs at {self.resolution} px, not {resolution}")
        seen: dict[str, OpSpec] = {}
        uniform_widths = [MnasNetArch(op=(0,) * N_BLOCKS, kernel=(0,) * N_BLOCKS, se=(0,) * N_BLOCKS,
                                skip=(0,) * N_BLOCKS, width=(w,) * N_BLOCKS, layers=(2,) * N_BLOCKS)
                          for w in range(len(WIDTH_RATIOS))]
        stem_and_tail = []
        h = self.resolution // 2
        for b in range(N_BLOCKS):
            prev = [STEM] if b == 0 else [make_divisible(SKELETON_WIDTHS[b - 1] * r) for r in WIDTH_RATIOS]
            for cin in prev:
                for ratio in WIDTH_RATIOS:
                    cout = make_divisible(SKELETON_WIDTHS[b] * ratio)
                    for first in (True, False):
                        stride = SKELETON_STRIDES[b] if first else 1
                        c_in = cin if first else cout
                        h_in = h if first else -(-h // SKELETON_STRIDES[b])
                        for op in OPS:
                            for k in KERNELS:
                                for se in SE:
                                    for skip in SKIPS:
                                        spec = self._layer(h_in, c_in, cout, stride, op, k, bool(se), skip)
                                        seen.setdefault(spec.key, spec)
            h = -(-h // SKELETON_STRIDES[b])
        for arch in uniform_widths:  # the stem, and the head after each width of the last block
            ops = self.ops(arch)
            stem_and_tail += [ops[0], *ops[-3:]]
        for op in stem_and_tail:
            seen.setdefault(op.key, op)
        return list(seen.values())
