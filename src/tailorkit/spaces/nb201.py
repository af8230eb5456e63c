"""The NAS-Bench-201 cell space (Dong & Yang, 2020): one cell of 4 nodes, 6 edges, 5 candidate ops per edge.

An arch is written the way NAS-Bench-201 and the HELP / HW-NAS-Bench latency data write it,
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: three groups, one per node 1..3, and ``op~j`` is the op on the edge
from node ``j`` into that node. The 6 edges are numbered in that reading order (1←0, 2←0, 2←1, 3←0, 3←1, 3←2),
and an op is its position in ``OPS``. Both orders are fixed: encodings and stored archs depend on them.

No ``index``/``from_index``: NAS-Bench-201's official arch index (the ``nb201_index`` column of the HELP data)
is not a formula of the op tuple. It is a fixed permutation from the benchmark's generation; index 0 is
``(avg_pool, nor_conv_1x1, skip, nor_conv_1x1, skip, skip)``, which rules out every base-5 (mixed-radix)
reading with any op order and any edge order. The data loaders keep that order as row order instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tailorkit.core.errors import ConfigError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""Candidate ops; an arch stores positions in this tuple (``none`` = 0 … ``avg_pool_3x3`` = 4)."""

N_EDGES = 6
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""``(to_node, from_node)`` of each edge, in arch-string order."""

_OP_INDEX = {name: i for i, name in enumerate(OPS)}
_OP = "(" + "|".join(re.escape(op) for op in OPS) + ")"
_ARCH_RE = re.compile(rf"\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|")
_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _parse(s: str) -> tuple[int, ...]:
    match = _ARCH_RE.fullmatch(s) if isinstance(s, str) else None
    if match is None:
        raise ConfigError(f"not a NAS-Bench-201 arch string: {s!r}; expected 6 ops from {OPS} written as "
                          f"'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', e.g. {_EXAMPLE!r}")
    return tuple(_OP_INDEX[name] for name in match.groups())


@dataclass(frozen=True)
class NB201Arch:
    """The op (index into ``OPS``) on each of the 6 edges, in arch-string order."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        try:
            ops = tuple(int(v) for v in self.ops)
        except (TypeError, ValueError):
            ops = ()
        if len(ops) != N_EDGES or any(not 0 <= v < len(OPS) for v in ops):
            raise ConfigError(f"a NAS-Bench-201 arch is {N_EDGES} op indices in 0..{len(OPS) - 1}, got {self.ops!r}")
        object.__setattr__(self, "ops", ops)

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(OPS[i] for i in self.ops)

    def to_str(self) -> str:
        """The NAS-Bench-201 string; byte-identical to the benchmark's (and the HELP data's) ``arch_str``."""
        a, b, c, d, e, f = self.op_names
        return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"

    @classmethod
    def from_str(cls, s: str) -> NB201Arch:
        """Strict: only the canonical form parses, so a string that round-trips is a key that joins tables."""
        return cls(_parse(s))


class NB201Space:
    """Encoding: per edge a one-hot over ``OPS``, edges in arch-string order, flattened (6×5 = 30, float32).
    It is lossless, so ``decode`` inverts it."""

    name = "nb201"
    size = len(OPS) ** N_EDGES
    encoding_length = N_EDGES * len(OPS)

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        """Uniform over all 15625 cells."""
        return NB201Arch(tuple(int(v) for v in rng.integers(0, len(OPS), N_EDGES)))

    @staticmethod
    def _one_hot(ops: np.ndarray) -> np.ndarray:
        n = ops.shape[0]
        out = np.zeros((n, N_EDGES, len(OPS)), dtype=np.float32)
        out[np.arange(n)[:, None], np.arange(N_EDGES)[None, :], ops] = 1.0
        return out.reshape(n, N_EDGES * len(OPS))

    def encode(self, arch: NB201Arch) -> np.ndarray:
        return self._one_hot(np.asarray([arch.ops], dtype=np.intp))[0]

    def encode_batch(self, archs: Sequence[NB201Arch]) -> np.ndarray:
        """``(N, 30)``; one numpy scatter for the whole batch."""
        ops = np.asarray([a.ops for a in archs], dtype=np.intp).reshape(-1, N_EDGES)
        return self._one_hot(ops)

    def encode_strings(self, strings: Sequence[str]) -> np.ndarray:
        """``encode_batch`` straight from arch strings, without building an ``NB201Arch`` per row (the loaders
        encode all 15625 at once). Malformed strings raise ``ConfigError`` as ``from_str`` does."""
        ops = np.asarray([_parse(s) for s in strings], dtype=np.intp).reshape(-1, N_EDGES)
        return self._one_hot(ops)

    def decode(self, vec: np.ndarray) -> NB201Arch:
        """Inverse of ``encode``; anything that is not exactly one 1 per edge raises ``ConfigError``."""
        grid = np.asarray(vec, dtype=np.float64)
        if grid.size != self.encoding_length:
            raise ConfigError(f"an NB201 encoding has {self.encoding_length} values, got shape {grid.shape}")
        grid = grid.reshape(N_EDGES, len(OPS))
        if not (np.isin(grid, (0.0, 1.0)).all() and (grid.sum(axis=1) == 1).all()):
            raise ConfigError("an NB201 encoding must be one-hot per edge (6 rows of 5, each a single 1)")
        return NB201Arch(tuple(int(v) for v in grid.argmax(axis=1)))
