"""The Single-Path-One-Shot space (Guo et al., 2020): a ShuffleNetV2 body of 20 choice blocks in four stages
(4, 4, 8, 4 blocks; 64, 160, 320, 640 channels; the first block of each stage has stride 2), after a 3×3
stride-2 stem of 16 channels, and before a 1×1 conv to 1 024, global pooling and the classifier.

Per block: one of ``BLOCKS`` (ShuffleNetV2 units with a 3×3, 5×5 or 7×7 depthwise conv, or the Xception-like
unit of three depthwise 3×3 + 1×1 pairs) and a middle width, ``SCALES[i]`` times half the block's output
channels (SPOS's channel search, 0.2–2.0). With ``bits`` the space also picks a bit width per block (SPOS's
mixed-precision search); it travels in the op's ``dtype`` (``int8``, ``int4``…) so tables keep quantized ops
apart, while ``build`` gives the float network (quantizing it is the exporter's job).

The input resolution is fixed (224 in SPOS; any multiple of 32 here).

``spos-reduced`` (:class:`SPOSReducedSpace`) is the same space with one block per stage, two in the third: its
digits supernet learns from uniform path sampling in CPU minutes, the 20-block one does not (README).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.core.records import OpSpec
from tailorkit.spaces.base import (
    Space,
    check_fields,
    check_input,
    decode_one_hot_fields,
    one_hot_fields,
    strict_ints,
)

BLOCKS = ("k3", "k5", "k7", "xception")
SCALES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
STAGE_REPEATS = (4, 4, 8, 4)
STAGE_CHANNELS = (64, 160, 320, 640)
STEM, LAST = 16, 1024
N_BLOCKS = sum(STAGE_REPEATS)
_KERNEL = {"k3": 3, "k5": 5, "k7": 7, "xception": 3}


@dataclass(frozen=True)
class SPOSArch:
    """Per block: the unit (index into ``BLOCKS``), the middle-width scale (index into ``SCALES``) and, in a
    mixed-precision space, the bit width (empty tuple otherwise)."""

    blocks: tuple[int, ...]
    channels: tuple[int, ...]
    bits: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        blocks = strict_ints(self.blocks) or ()
        n_blocks = len(blocks) or N_BLOCKS  # the space checks the count against its layout
        for name, values, n in (("blocks", self.blocks, len(BLOCKS)), ("channels", self.channels, len(SCALES))):
            ints = strict_ints(values) or ()
            if len(ints) != n_blocks or any(not 0 <= v < n for v in ints):
                raise ConfigError(f"SPOS arch {name} must be {n_blocks} indices in 0..{n - 1}, got {values!r}")
            object.__setattr__(self, name, ints)
        bits = strict_ints(self.bits)
        if bits is None or (bits and len(bits) != n_blocks):
            raise ConfigError(f"SPOS arch bits must be {n_blocks} bit widths (or absent), got {list(self.bits)}")
        object.__setattr__(self, "bits", bits)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"blocks": list(self.blocks), "channels": list(self.channels)}
        if self.bits:
            out["bits"] = list(self.bits)
        return out


class SPOSSpace(Space):
    """``bits``: bit widths to choose from per block (e.g. ``(4, 8)``), or empty for the float space."""

    name = "spos"
    stage_repeats: tuple[int, ...] = STAGE_REPEATS
    buildable = True
    encoding_name = "one-hot unit + channel scale (+ bits) per block"

    def __init__(self, width: float = 1.0, num_classes: int = 1000, resolution: int = 224,
                 bits: Sequence[int] = ()) -> None:
        if width != 1.0:
            raise ConfigError(f"SPOS comes in width 1.0 (its channel search scales the blocks), got {width}")
        check_input("SPOS", resolution, num_classes)
        self.bits = tuple(sorted({int(b) for b in bits}))
        if any(b < 1 or b > 32 for b in self.bits):
            raise ConfigError(f"bit widths must be in 1..32, got {list(bits)}")
        self.width, self.num_classes, self.resolution = width, num_classes, resolution

    def with_classes(self, num_classes: int) -> SPOSSpace:
        """The same space with another classifier (the ops differ only in its key)."""
        return type(self)(width=self.width, num_classes=num_classes, resolution=self.resolution, bits=self.bits)

    # ------------------------------------------------------------------------------------------ archs

    @property
    def n_blocks(self) -> int:
        return sum(self.stage_repeats)

    @property
    def size(self) -> int:
        return (len(BLOCKS) * len(SCALES) * max(1, len(self.bits))) ** self.n_blocks

    @property
    def encoding_length(self) -> int:
        return self.n_blocks * (len(BLOCKS) + len(SCALES) + len(self.bits))

    def sample(self, rng: np.random.Generator) -> SPOSArch:
        """Uniform per block, as SPOS samples paths."""
        bits = tuple(int(b) for b in rng.choice(self.bits, self.n_blocks)) if self.bits else ()
        return SPOSArch(tuple(int(v) for v in rng.integers(0, len(BLOCKS), self.n_blocks)),
                        tuple(int(v) for v in rng.integers(0, len(SCALES), self.n_blocks)), bits)

    def smallest(self) -> SPOSArch:
        return SPOSArch((BLOCKS.index("k3"),) * self.n_blocks, (0,) * self.n_blocks,
                        (min(self.bits),) * self.n_blocks if self.bits else ())

    def largest(self) -> SPOSArch:
        return SPOSArch((BLOCKS.index("k7"),) * self.n_blocks, (len(SCALES) - 1,) * self.n_blocks,
                        (max(self.bits),) * self.n_blocks if self.bits else ())

    def gene_choices(self) -> list[tuple[int, ...]]:
        return [tuple(range(len(BLOCKS)))] * self.n_blocks + [tuple(range(len(SCALES)))] * self.n_blocks \
            + ([tuple(self.bits)] * self.n_blocks if self.bits else [])

    def genes(self, archs: Sequence[SPOSArch], rng: np.random.Generator | None = None) -> np.ndarray:
        for arch in archs:
            self._check_arch(arch)
        return np.array([arch.blocks + arch.channels + arch.bits for arch in archs],
                        dtype=np.int64).reshape(len(archs), -1)

    def from_genes(self, genes: np.ndarray) -> list[SPOSArch]:
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(self.gene_choices()))
        n = self.n_blocks
        archs = [SPOSArch(tuple(g[:n]), tuple(g[n:2 * n]), tuple(g[2 * n:]))
                 for g in genes.tolist()]
        for arch in archs:
            self._check_arch(arch)
        return archs

    def _widths(self) -> list[int]:
        return [len(BLOCKS), len(SCALES)] + ([len(self.bits)] if self.bits else [])

    def encode_batch(self, archs: Sequence[SPOSArch]) -> np.ndarray:
        n = len(archs)
        for arch in archs:
            self._check_arch(arch)
        fields = [np.array([a.blocks for a in archs]).reshape(n, self.n_blocks),
                  np.array([a.channels for a in archs]).reshape(n, self.n_blocks)]
        if self.bits:
            index = {b: i for i, b in enumerate(self.bits)}
            fields.append(np.array([[index[b] for b in a.bits] for a in archs]).reshape(n, self.n_blocks))
        return one_hot_fields(fields, self._widths())

    def decode(self, vec: np.ndarray) -> SPOSArch:
        picks = decode_one_hot_fields(vec, self.n_blocks, self._widths(), f"a {self.name}")
        return SPOSArch(picks[0], picks[1], tuple(self.bits[i] for i in picks[2]) if self.bits else ())

    def arch_to_dict(self, arch: SPOSArch) -> dict[str, Any]:
        return arch.to_dict()

    def arch_from_dict(self, data: Mapping[str, Any]) -> SPOSArch:
        check_fields(data, ("blocks", "channels", "bits") if self.bits else ("blocks", "channels"), "a SPOS arch")
        arch = SPOSArch(tuple(data["blocks"]), tuple(data["channels"]), tuple(data.get("bits", ())))
        self._check_arch(arch)
        return arch

    def _check_arch(self, arch: SPOSArch) -> None:
        """The arch fits this space: its block count is the layout's, its bit widths the space's."""
        if len(arch.blocks) != self.n_blocks:
            repeats = ", ".join(map(str, self.stage_repeats))
            raise ConfigError(f"the arch has {len(arch.blocks)} blocks; {self.name} has {self.n_blocks} (stage repeats "
                              f"{repeats})")
        if bool(arch.bits) != bool(self.bits) or any(b not in self.bits for b in arch.bits):
            raise ConfigError(f"SPOS arch bits {list(arch.bits)} do not fit this space's bit widths "
                              f"{list(self.bits) or 'none (float)'}")

    # ---------------------------------------------------------------------------------------------- ops

    def _stem(self) -> tuple[OpSpec, int]:
        h = self.resolution // 2
        return OpSpec("conv", (self.resolution, self.resolution, 3), (h, h, STEM), kernel=3, stride=2,
                      activation="relu"), h

    def _tail(self, h: int) -> list[OpSpec]:
        c = STAGE_CHANNELS[-1]
        return [OpSpec("conv", (h, h, c), (h, h, LAST), activation="relu"),
                OpSpec.ofa_fixed("AvgPool2D", (h, h, LAST), (1, 1, LAST)),
                OpSpec.ofa_fixed("Logits", (1, 1, LAST), (self.num_classes,))]

    @staticmethod
    def _block(h: int, cin: int, cout: int, stride: int, unit: int, scale: int, bits: int | None) -> OpSpec:
        name = BLOCKS[unit]
        mid = max(1, int(round(cout // 2 * SCALES[scale])))
        out = h // stride
        return OpSpec("shuffle_xception" if name == "xception" else "shufflenet", (h, h, cin), (out, out, cout),
                      kernel=_KERNEL[name], stride=stride, expand=mid, activation="relu",
                      dtype=f"int{bits}" if bits and bits < 32 else "float32")

    def _positions(self) -> list[tuple[int, int, int, int]]:
        """(input size, input channels, output channels, stride) of each block slot."""
        out, h, cin = [], self.resolution // 2, STEM
        for repeats, cout in zip(self.stage_repeats, STAGE_CHANNELS, strict=True):
            for j in range(repeats):
                stride = 2 if j == 0 else 1
                out.append((h, cin, cout, stride))
                h, cin = h // stride, cout
        return out

    def ops(self, arch: SPOSArch) -> list[OpSpec]:
        self._check_arch(arch)
        stem, _ = self._stem()
        ops = [stem]
        for i, (h, cin, cout, stride) in enumerate(self._positions()):
            ops.append(self._block(h, cin, cout, stride, arch.blocks[i], arch.channels[i],
                                   arch.bits[i] if arch.bits else None))
        return ops + self._tail(self.resolution // 32)

    def all_ops(self, resolution: int | None = None) -> list[OpSpec]:
        if resolution is not None and resolution != self.resolution:
            raise ConfigError(f"this SPOS space runs at {self.resolution} px, not {resolution} (pass resolution= "
                              "when creating it)")
        stem, _ = self._stem()
        seen: dict[str, OpSpec] = {stem.key: stem}
        for h, cin, cout, stride in self._positions():
            for unit in range(len(BLOCKS)):
                for scale in range(len(SCALES)):
                    for bits in self.bits or (None,):
                        op = self._block(h, cin, cout, stride, unit, scale, bits)
                        seen.setdefault(op.key, op)
        for op in self._tail(self.resolution // 32):
            seen.setdefault(op.key, op)
        return list(seen.values())


class SPOSReducedSpace(SPOSSpace):
    """SPOS with one choice block per stage (two in the third: stage repeats 1, 1, 2, 1), the reduced body
    SPOS reproductions offer as ``reduce_model_size``. Same units, channel scales, widths and op keys as the
    full space, 5 blocks instead of 20: a supernet that trains in under a minute of CPU on digits, and the
    one that learns from uniform paths even without the k7 warm-up the full body needs (README, Spaces)."""

    name = "spos-reduced"
    stage_repeats = (1, 1, 2, 1)
