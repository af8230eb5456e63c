"""The Space seam: what search, predictors and tables need from a search space, for every space alike.

An arch is a frozen dataclass owned by its space. A space samples archs, mutates and crosses them over (the
moves of evolutionary search), encodes them for predictors (``encode_batch`` for whole populations), writes them
as JSON-able dicts (files, the CLI) and reads them back with errors that name the offending field. Spaces whose
ops can be built and measured here (``buildable``) also list an arch's ops with their table keys and build it
as a torch module; the others (NAS-Bench-201, FBNet, HAT) are known through public latency tables.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tailorkit.core.errors import ConfigError

if TYPE_CHECKING:  # torch loads only when a network is built: listing, sampling and encoding stay light
    from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never more than 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class Space(abc.ABC):
    name: ClassVar[str]
    buildable: ClassVar[bool] = False
    encoding_name: ClassVar[str] = ""  # what ``encode`` returns, in a few words (``tailor space list``)

    # ------------------------------------------------------------------------------------------ archs

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """How many distinct archs the space holds (a Python int: they get large)."""

    @property
    @abc.abstractmethod
    def encoding_length(self) -> int: ...

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Any: ...

    def mutate(self, arch: Any, rng: np.random.Generator, prob: float = 0.1) -> Any:
        """Each choice is redrawn (to a different value) with probability ``prob``; at least one live choice
        always is, so a mutant differs from its parent."""
        genes = self.genes([arch], rng)
        return self.from_genes(redraw(genes[0], self.gene_choices(), rng, prob, self.live_genes(genes)[0])[None])[0]

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        """Each choice from ``a`` or ``b`` with equal probability."""
        genes = self.genes([a, b], rng)
        return self.from_genes(mix(genes[0], genes[1], rng)[None])[0]

    # ------------------------------------------------------------------------------------------ genes
    # The decisions a search makes: one integer gene per choice, with the values it may take. Strategies work on
    # whole (N, G) gene arrays (vectorised populations, an RL policy's per-decision softmax) and convert to
    # archs only at the edges.

    @abc.abstractmethod
    def gene_choices(self) -> list[tuple[int, ...]]:
        """Per gene, the values it may take (ordered; a strategy's choice index points into this)."""

    @abc.abstractmethod
    def genes(self, archs: Sequence[Any], rng: np.random.Generator | None = None) -> np.ndarray:
        """(N, G) int64 gene values. Genes an arch does not use (a slot past its depth) get a value drawn with
        ``rng``, or the first choice without one."""

    @abc.abstractmethod
    def from_genes(self, genes: np.ndarray) -> list[Any]:
        """Inverse of :meth:`genes` (unused genes are dropped); a value outside its choices is a ConfigError."""

    def live_genes(self, genes: np.ndarray) -> np.ndarray:
        """(N, G) bool: which genes change the network (a kernel past its stage's depth does not)."""
        return np.ones(np.shape(genes), dtype=bool)

    # ------------------------------------------------------------------------------------- encodings

    def encode(self, arch: Any) -> np.ndarray:
        return self.encode_batch([arch])[0]

    @abc.abstractmethod
    def encode_batch(self, archs: Sequence[Any]) -> np.ndarray: ...

    def decode(self, vec: np.ndarray) -> Any:
        raise ConfigError(f"the {self.name} encoding is lossy (many archs share one), so it cannot be decoded")

    # ------------------------------------------------------------------------------------------ JSON

    @abc.abstractmethod
    def arch_to_dict(self, arch: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def arch_from_dict(self, data: Mapping[str, Any]) -> Any:
        """Inverse of :meth:`arch_to_dict`; a missing, unknown or out-of-range field is a ConfigError naming it."""

    def arch_to_json(self, arch: Any) -> str:
        return json.dumps(self.arch_to_dict(arch), separators=(",", ":"))

    def arch_from_json(self, text: str) -> Any:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"a {self.name} arch must be a JSON object: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"a {self.name} arch must be a JSON object, got {type(data).__name__}")
        return self.arch_from_dict(data)

    # ------------------------------------------------------------------------------ buildable spaces

    def ops(self, arch: Any) -> list[Any]:
        raise self._not_buildable()

    def all_ops(self, resolution: int) -> list[Any]:
        raise self._not_buildable()

    def build(self, arch: Any) -> nn.Module:
        """The arch as the very modules its ops name, fresh weights, eval mode (what the tables time)."""
        if not self.buildable:
            raise self._not_buildable()
        from tailorkit.spaces.blocks import build_network

        return build_network(self.ops(arch))

    def input_shape(self, arch: Any = None, batch: int = 1) -> tuple[int, int, int, int]:
        """NCHW input of an arch: its own resolution where it has one (OFA), else the space's."""
        r = getattr(arch, "r", None) or getattr(self, "resolution", None)
        if r is None:
            raise self._not_buildable()
        return (batch, 3, int(r), int(r))

    def _not_buildable(self) -> ConfigError:
        return ConfigError(f"space {self.name!r} has no ops to build or measure here (its latencies come from "
                           "public tables)")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "archs": self.size, "encoding": self.encoding_name,
                "encoding_length": self.encoding_length, "buildable": self.buildable}


def strict_ints(values: Any) -> tuple[int, ...] | None:
    """``values`` as a tuple of ints, or None if any is not an integer (bools and 3.9 included): arch files are
    user input, and a silently truncated choice is a different arch."""
    try:
        items = tuple(values)
    except TypeError:
        return None
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            return None
        out.append(int(v))
    return tuple(out)


DIGITS_CLASSES = 10  # the supernets train on scikit-learn's digits; the tables' spaces have ImageNet's 1000


def check_input(what: str, resolution: int, num_classes: int) -> None:
    """The fixed input of spaces without a resolution gene (SPOS, MnasNet): strides of 32 in all, ≥ 1 class."""
    if resolution < 32 or resolution % 32:
        raise ConfigError(f"{what} input resolution must be a multiple of 32, got {resolution}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")


def check_fields(data: Mapping[str, Any], required: Sequence[str], what: str) -> None:
    """A ConfigError naming missing or unknown keys of an arch dict."""
    missing = [k for k in required if k not in data]
    unknown = sorted(set(data) - set(required))
    if missing or unknown:
        raise ConfigError(f"{what} needs the fields {list(required)}"
                          + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))


def redraw(values: Sequence[int], choices: Sequence[Sequence[int]], rng: np.random.Generator, prob: float,
           live: np.ndarray | None = None) -> np.ndarray:
    """Mutation of a flat gene vector: each gene, with probability ``prob``, takes another value from its
    ``choices[i]``; at least one gene always does, drawn among the ``live`` ones (genes that change the network:
    a kernel past a stage's depth does not)."""
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"mutation probability must be in [0, 1], got {prob}")
    values = np.array(values, dtype=np.int64)
    hit = rng.random(values.size) < prob
    pool = np.flatnonzero(live) if live is not None else np.arange(values.size)
    if not hit[pool].any():
        hit[rng.choice(pool)] = True
    for i in np.flatnonzero(hit):
        others = [c for c in choices[i] if c != values[i]]
        if others:
            values[i] = others[int(rng.integers(len(others)))]
    return values


def one_hot_fields(fields: Sequence[np.ndarray], widths: Sequence[int]) -> np.ndarray:
    """Per position, a one-hot of each field's choice index, fields side by side: ``fields[i]`` is (N, P)
    indices into ``widths[i]`` choices; the result is (N, P · Σ widths), float32."""
    n, positions = np.shape(fields[0])
    out = []
    for values, k in zip(fields, widths, strict=True):
        onehot = np.zeros((n, positions, k), dtype=np.float32)
        onehot[np.arange(n)[:, None], np.arange(positions)[None, :], np.asarray(values, dtype=np.intp)] = 1.0
        out.append(onehot)
    return np.concatenate(out, axis=2).reshape(n, -1)


def decode_one_hot_fields(vec: np.ndarray, positions: int, widths: Sequence[int], what: str
                          ) -> list[tuple[int, ...]]:
    """Inverse of :func:`one_hot_fields` for one arch: per field, the chosen index at each position; anything
    not exactly one 1 per position and field is a ConfigError."""
    grid = np.asarray(vec, dtype=np.float64)
    if grid.size != positions * sum(widths):
        raise ConfigError(f"{what} encoding has {positions * sum(widths)} values, got shape {grid.shape}")
    grid = grid.reshape(positions, -1)
    picks, start = [], 0
    for k in widths:
        part = grid[:, start:start + k]
        if not (np.isin(part, (0.0, 1.0)).all() and (part.sum(axis=1) == 1).all()):
            raise ConfigError(f"{what} encoding must be one-hot per position and choice")
        picks.append(tuple(int(v) for v in part.argmax(axis=1)))
        start += k
    return picks


def mix(a: Sequence[int], b: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Uniform crossover of two equally long gene vectors."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    return np.where(rng.random(a.size) < 0.5, a, b)
