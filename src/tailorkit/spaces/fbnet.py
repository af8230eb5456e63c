"""The FBNet space (Wu et al., 2019) as HELP and HW-NAS-Bench tabulate it: 22 searchable layers, each one of
9 candidate blocks.

A block is written ``k{kernel}_e{expand}`` with ``_g2`` for the grouped (2 groups) 1×1 convs, or ``skip``; an
arch stores the block's position in ``BLOCKS``. That order is the one the HELP data's ``op_idx_list`` column
uses (0 = ``k3_e1`` … 8 = ``skip``), so it is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tailorkit.core.errors import ConfigError

BLOCKS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
N_LAYERS = 22


def _parse(s: str) -> tuple[int, ...]:
    parts = s.split() if isinstance(s, str) else []
    if len(parts) != N_LAYERS or not all(p.isascii() and p.isdigit() and int(p) < len(BLOCKS) for p in parts):
        raise ConfigError(f"not an FBNet arch string: {s!r}; expected {N_LAYERS} block indices in "
                          f"0..{len(BLOCKS) - 1} separated by spaces, e.g. '7 8 1 8 4 ...'")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class FBNetArch:
    """The block (index into ``BLOCKS``) chosen for each of the 22 layers, input to output."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        try:
            ops = tuple(int(v) for v in self.ops)
        except (TypeError, ValueError):
            ops = ()
        if len(ops) != N_LAYERS or any(not 0 <= v < len(BLOCKS) for v in ops):
            raise ConfigError(f"an FBNet arch is {N_LAYERS} block indices in 0..{len(BLOCKS) - 1}, got {self.ops!r}")
        object.__setattr__(self, "ops", ops)

    @property
    def blocks(self) -> tuple[str, ...]:
        """Block names per layer (the HELP data's ``L00..L21`` columns)."""
        return tuple(BLOCKS[i] for i in self.ops)

    def to_str(self) -> str:
        """Space-separated indices, the HELP data's ``op_idx_list`` format (``"7 8 1 ..."``)."""
        return " ".join(str(v) for v in self.ops)

    @classmethod
    def from_str(cls, s: str) -> FBNetArch:
        """Any whitespace between the indices is accepted; ``to_str`` always writes single spaces."""
        return cls(_parse(s))


class FBNetSpace:
    """Encoding: per layer a one-hot over ``BLOCKS``, layers in order, flattened (22×9 = 198, float32).
    It is lossless, so ``decode`` inverts it."""

    name = "fbnet"
    size = len(BLOCKS) ** N_LAYERS
    encoding_length = N_LAYERS * len(BLOCKS)

    def sample(self, rng: np.random.Generator) -> FBNetArch:
        """Uniform per layer, as HELP's 5000 archs were drawn."""
        return FBNetArch(tuple(int(v) for v in rng.integers(0, len(BLOCKS), N_LAYERS)))

    @staticmethod
    def _one_hot(ops: np.ndarray) -> np.ndarray:
        n = ops.shape[0]
        out = np.zeros((n, N_LAYERS, len(BLOCKS)), dtype=np.float32)
        out[np.arange(n)[:, None], np.arange(N_LAYERS)[None, :], ops] = 1.0
        return out.reshape(n, N_LAYERS * len(BLOCKS))

    def encode(self, arch: FBNetArch) -> np.ndarray:
        return self._one_hot(np.asarray([arch.ops], dtype=np.intp))[0]

    def encode_batch(self, archs: Sequence[FBNetArch]) -> np.ndarray:
        """``(N, 198)``; one numpy scatter for the whole batch."""
        ops = np.asarray([a.ops for a in archs], dtype=np.intp).reshape(-1, N_LAYERS)
        return self._one_hot(ops)

    def encode_strings(self, strings: Sequence[str]) -> np.ndarray:
        """``encode_batch`` straight from ``op_idx_list`` strings; malformed ones raise ``ConfigError``."""
        ops = np.asarray([_parse(s) for s in strings], dtype=np.intp).reshape(-1, N_LAYERS)
        return self._one_hot(ops)

    def decode(self, vec: np.ndarray) -> FBNetArch:
        """Inverse of ``encode``; anything that is not exactly one 1 per layer raises ``ConfigError``."""
        grid = np.asarray(vec, dtype=np.float64)
        if grid.size != self.encoding_length:
            raise ConfigError(f"an FBNet encoding has {self.encoding_length} values, got shape {grid.shape}")
        grid = grid.reshape(N_LAYERS, len(BLOCKS))
        if not (np.isin(grid, (0.0, 1.0)).all() and (grid.sum(axis=1) == 1).all()):
            raise ConfigError("an FBNet encoding must be one-hot per layer (22 rows of 9, each a single 1)")
        return FBNetArch(tuple(int(v) for v in grid.argmax(axis=1)))
