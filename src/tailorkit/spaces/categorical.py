"""Spaces whose arch is one choice per position (NB201: an op per edge; FBNet: a block per layer): the
one-hot encoding, sampling and decoding they share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.spaces.base import Space, strict_ints


def check_choices(ops: Any, positions: int, choices: int, what: str, unit: str) -> tuple[int, ...]:
    """``ops`` as a tuple of ``positions`` ints in ``0..choices-1``, or a ConfigError saying what an arch is."""
    values = strict_ints(ops) or ()
    if len(values) != positions or any(not 0 <= v < choices for v in values):
        raise ConfigError(f"{what} is {positions} {unit} indices in 0..{choices - 1}, got {ops!r}")
    return values


class CategoricalSpace(Space):
    """Encoding: per position a one-hot over the choices, positions in order, flattened (float32). It is
    lossless, so :meth:`decode` inverts it. Subclasses name the positions, the choices, the arch type and how
    an arch is written as text. As JSON an arch is ``{"arch": <its text form>}``; ``{"ops": [indices]}`` is
    read too."""

    encoding_name = "one-hot per position"

    name: ClassVar[str]
    positions: ClassVar[int]
    choices: ClassVar[tuple[str, ...]]
    position_word: ClassVar[str]
    arch_type: ClassVar[Any]

    @property
    def size(self) -> int:
        return len(self.choices) ** self.positions

    @property
    def encoding_length(self) -> int:
        return self.positions * len(self.choices)

    @staticmethod
    def parse(text: str) -> tuple[int, ...]:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Any:
        """Uniform per position (how the HELP / HW-NAS-Bench archs were drawn)."""
        return self.arch_type(tuple(int(v) for v in rng.integers(0, len(self.choices), self.positions)))

    def gene_choices(self) -> list[tuple[int, ...]]:
        return [tuple(range(len(self.choices)))] * self.positions

    def genes(self, archs: Sequence[Any], rng: np.random.Generator | None = None) -> np.ndarray:
        return np.array([arch.ops for arch in archs], dtype=np.int64).reshape(len(archs), self.positions)

    def from_genes(self, genes: np.ndarray) -> list[Any]:
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, self.positions)
        return [self.arch_type(check_choices(tuple(row.tolist()), self.positions, len(self.choices),
                                             f"a {self.name} arch", self.position_word)) for row in genes]

    def arch_to_dict(self, arch: Any) -> dict[str, Any]:
        return {"arch": arch.to_str()}

    def arch_from_dict(self, data: Mapping[str, Any]) -> Any:
        keys = set(data)
        if len(keys) != 1 or not keys <= {"arch", "ops"}:
            raise ConfigError(f"a {self.name} arch is {{\"arch\": \"...\"}} or {{\"ops\": [...]}}, got fields "
                              f"{sorted(keys)}")
        if "arch" in data:
            return self.arch_type.from_str(data["arch"])
        return self.arch_type(data["ops"])

    def _one_hot(self, ops: np.ndarray) -> np.ndarray:
        n, k = ops.shape[0], len(self.choices)
        out = np.zeros((n, self.positions, k), dtype=np.float32)
        out[np.arange(n)[:, None], np.arange(self.positions)[None, :], ops] = 1.0
        return out.reshape(n, self.positions * k)

    def encode(self, arch: Any) -> np.ndarray:
        return self._one_hot(np.asarray([arch.ops], dtype=np.intp))[0]

    def encode_batch(self, archs: Sequence[Any]) -> np.ndarray:
        """``(N, encoding_length)``; one numpy scatter for the whole batch."""
        return self._one_hot(np.asarray([a.ops for a in archs], dtype=np.intp).reshape(-1, self.positions))

    def encode_strings(self, strings: Sequence[str]) -> np.ndarray:
        """``encode_batch`` straight from text, without an arch object per row; malformed text is a
        ConfigError."""
        return self._one_hot(np.asarray([self.parse(s) for s in strings], dtype=np.intp).reshape(-1, self.positions))

    def decode(self, vec: np.ndarray) -> Any:
        """Inverse of ``encode``; anything not exactly one 1 per position is a ConfigError."""
        grid = np.asarray(vec, dtype=np.float64)
        if grid.size != self.encoding_length:
            raise ConfigError(f"an {self.name} encoding has {self.encoding_length} values, got shape {grid.shape}")
        grid = grid.reshape(self.positions, len(self.choices))
        if not (np.isin(grid, (0.0, 1.0)).all() and (grid.sum(axis=1) == 1).all()):
            raise ConfigError(f"an {self.name} encoding must be one-hot per {self.position_word} ({self.positions} "
                              f"rows of {len(self.choices)}, each a single 1)")
        return self.arch_type(tuple(int(v) for v in grid.argmax(axis=1)))
