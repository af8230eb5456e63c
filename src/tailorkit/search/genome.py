"""A space's genes as choice indices, with the vectorised moves every strategy needs.

A search works on (N, G) integer arrays of choice indices: sampling, mutation and crossover of whole populations
are a few numpy operations, and an RL policy's per-decision softmax maps onto them directly. ``values`` turns
indices into the space's gene values (OFA's k/e/d/r row, which its lookup-table sum reads as is) and ``archs``
into arch objects, only where a predictor or a file needs them.

Some choices can be ruled out for one search (``allowed``): a lookup table measured at one resolution cannot
score others, so an OFA search against it keeps the resolution gene at the measured one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError


class Genome:
    def __init__(self, space: Any, allowed: Mapping[int, Sequence[int]] | None = None) -> None:
        self.space = space
        choices = [tuple(c) for c in space.gene_choices()]
        self.n_genes = len(choices)
        self.sizes = np.array([len(c) for c in choices], dtype=np.int64)
        self.max_choices = int(self.sizes.max())
        self.table = np.zeros((self.n_genes, self.max_choices), dtype=np.int64)
        self.mask = np.zeros((self.n_genes, self.max_choices), dtype=bool)
        for g, c in enumerate(choices):
            self.table[g, :len(c)] = c
            self.mask[g, :len(c)] = True
        for g, values in (allowed or {}).items():
            if not 0 <= g < self.n_genes:
                raise ConfigError(f"gene {g} is outside the {space.name} genome (0..{self.n_genes - 1})")
            keep = [choices[g].index(v) for v in values if v in choices[g]]
            if not keep or len(keep) != len(set(values)):
                raise ConfigError(f"gene {g} of {space.name} takes values from {list(choices[g])}, got "
                                  f"{list(values)}")
            self.mask[g] = False
            self.mask[g, keep] = True
        # allowed choices of each gene in order, padded; position of each choice among them
        self.n_allowed = self.mask.sum(axis=1)
        self.allowed_idx = np.zeros_like(self.table)
        self.position = np.full_like(self.table, -1)
        for g in range(self.n_genes):
            idx = np.flatnonzero(self.mask[g])
            self.allowed_idx[g, :idx.size] = idx
            self.position[g, idx] = np.arange(idx.size)
        self._cols = np.arange(self.n_genes)
        # a flat view: ``flat[idx + _offset]`` is a 1-D gather, about half the cost of the 2-D fancy index on
        # a generation-sized array (values and the moves below run thousands of times per search)
        self._offset = self._cols * self.max_choices
        self._table_flat = self.table.ravel()
        self._movable = self.n_allowed > 1
        # the choice a mutation moves to, by (gene, current choice, draw among the other allowed choices):
        # one gather per mutated gene
        m = self.max_choices
        self._n_other = np.maximum(self.n_allowed - 1, 1)
        nxt = np.zeros((self.n_genes, m, max(m - 1, 1)), dtype=np.int64)
        for g in range(self.n_genes):
            idx = np.flatnonzero(self.mask[g])
            for c in idx:
                others = np.roll(idx, -int(self.position[g, c]))[1:]  # the next allowed ones, wrapping
                nxt[g, c, :others.size] = others if others.size else c
        self._next_flat = nxt.ravel()
        self._next_stride = nxt.shape[2]

    # ------------------------------------------------------------------------------------ conversion

    def values(self, idx: np.ndarray) -> np.ndarray:
        return self._table_flat[np.asarray(idx, dtype=np.int64) + self._offset]

    def indices(self, values: np.ndarray) -> np.ndarray:
        """Choice indices of gene values; a value that is not an allowed choice is a ConfigError."""
        values = np.asarray(values, dtype=np.int64).reshape(-1, self.n_genes)
        hit = (self.table[None, :, :] == values[:, :, None]) & self.mask[None, :, :]
        bad = ~hit.any(axis=2)
        if bad.any():
            row, g = np.argwhere(bad)[0]
            raise ConfigError(f"gene {g} of {self.space.name} is {values[row, g]}, not one of "
                              f"{self.table[g, self.mask[g]].tolist()} allowed in this search")
        return hit.argmax(axis=2)

    def archs(self, idx: np.ndarray) -> list[Any]:
        return self.space.from_genes(self.values(idx))

    def from_archs(self, archs: Sequence[Any]) -> np.ndarray:
        return self.indices(self.space.genes(archs))

    def live(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.space.live_genes(self.values(idx)), dtype=bool)

    # ---------------------------------------------------------------------------------------- moves

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        pos = np.floor(rng.random((n, self.n_genes)) * self.n_allowed[None, :]).astype(np.int64)
        return self.allowed_idx[self._cols[None, :], pos]

    def mutate(self, idx: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
        """Each gene that has another allowed choice is redrawn to a different one with probability ``prob``;
        every row changes at least one live gene (one that changes the network), so a mutant differs from its
        parent. Random numbers are drawn per gene only for the coin flips; the forced gene and the new
        choices are drawn only where they are needed (about a tenth of the genes at OFA's prob 0.1)."""
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"mutation probability must be in [0, 1], got {prob}")
        idx = np.array(idx, dtype=np.int64)  # a copy: the mutant
        if idx.shape[0] == 0:
            return idx
        hit = rng.random(idx.shape) < prob
        hit &= self._movable
        pool = self.live(idx)
        pool &= self._movable
        need = np.flatnonzero(~(hit & pool).any(axis=1) & pool.any(axis=1))
        if need.size:  # one live gene, uniformly among the row's movable live genes
            live = pool[need]
            k = np.floor(rng.random(need.size) * live.sum(axis=1)).astype(np.int64)
            hit[need, (live.cumsum(axis=1) <= k[:, None]).sum(axis=1)] = True
        rows, genes = np.nonzero(hit)
        # uniform over the other allowed choices
        draw = (rng.random(genes.size) * self._n_other[genes]).astype(np.int64)
        idx[rows, genes] = self._next_flat[(self._offset[genes] + idx[rows, genes]) * self._next_stride + draw]
        return idx

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        return np.where(rng.random(a.shape) < 0.5, a, b)

    def key(self, idx: np.ndarray) -> list[bytes]:
        """Hashable identity per row (for de-duplication)."""
        idx = np.ascontiguousarray(np.asarray(idx, dtype=np.int16))
        return [row.tobytes() for row in idx]
