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
from dataclasses import dataclass

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.spaces.categorical import CategoricalSpace, check_choices

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
        object.__setattr__(self, "ops", check_choices(self.ops, N_EDGES, len(OPS), "a NAS-Bench-201 arch", "op"))

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


class NB201Space(CategoricalSpace):
    """Encoding: per edge a one-hot over ``OPS``, edges in order, flattened (6×5 = 30). Lossless."""

    name = "nb201"
    positions = N_EDGES
    choices = OPS
    position_word = "edge"
    arch_type = NB201Arch
    parse = staticmethod(_parse)


def live_op_counts(X: np.ndarray) -> np.ndarray:
    """Per arch (rows of the one-hot encoding), how often each op of ``OPS`` sits on a *live* edge: one whose
    result reaches the cell output. An edge into node 1 or 2 is dead when every edge leaving that node is
    ``none`` or dead itself; a graph compiler that folds the zeros drops it.

    Why a space owns this: in HELP's tables, raspi4 and pixel3 run archs with equal op counts and live counts
    alike (grouping by both lifts the best-constant reference from 72 to 81 % and 74 to 81 % ±10 %), while on
    the other devices every edge runs and the plain op counts are what matter."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != N_EDGES * len(OPS):
        raise ConfigError(f"live op counts need NAS-Bench-201 one-hot encodings of length {N_EDGES * len(OPS)}, "
                          f"got shape {X.shape}")
    ops = X.reshape(len(X), N_EDGES, len(OPS)).argmax(axis=2)
    used = {3: np.ones(len(X), dtype=bool)}  # node 3 is the cell's output
    for node in (2, 1):  # whether node 1 is used depends on node 2
        used[node] = np.zeros(len(X), dtype=bool)
        for edge, (to_node, from_node) in enumerate(EDGES):
            if from_node == node:
                used[node] |= (ops[:, edge] != _OP_INDEX["none"]) & used[to_node]
    live = np.stack([used[to_node] for to_node, _ in EDGES], axis=1)
    return np.stack([((ops == op) & live).sum(axis=1) for op in range(len(OPS))], axis=1).astype(np.float64)
