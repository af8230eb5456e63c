"""What a search scores: latency from a predictor (or a measured column), accuracy from an accuracy predictor,
both for whole populations at once, combined by a reward.

Latency sources, by what the predictor is:
* a lookup table or kernel-level predictor — the sum of its per-op latencies over each arch's ops; gathered per
  block slot for OFA (millions of archs/s), per arch for the other buildable spaces;
* a model-level predictor (GBM, MLP, additive, …) — ``predict`` on the space's encoding;
* a measured column of a public table (HELP's NAS-Bench-201: every arch measured on 27 devices) — a lookup of
  the real measurement, no model in between.

A predictor trained for another space (or, when the search names a device, for another device) is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError, PredictorError
from tailorkit.predictors.base import Predictor
from tailorkit.search.genome import Genome
from tailorkit.search.rewards import Reward
from tailorkit.search.strategies import Evaluations

log = logging.getLogger(__name__)


class LatencySource:
    """``__call__(values)`` → predicted ms for (N, G) gene values of ``space``."""

    description: str = ""

    def __call__(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def allowed_genes(self) -> dict[int, list[int]]:
        """Gene values this source can score, where it cannot score them all (e.g. a table's resolutions)."""
        return {}


class PredictorLatency(LatencySource):
    def __init__(self, space: Any, predictor: Predictor, *, device: str | None = None) -> None:
        if predictor.space is not None and predictor.space != space.name:
            raise PredictorError(f"the latency predictor was trained for space {predictor.space!r}, not "
                                 f"{space.name!r}")
        if device is not None and predictor.device is not None and predictor.device != device:
            raise PredictorError(f"the latency predictor was trained for device {predictor.device!r}, not "
                                 f"{device!r}; measure a table on {device!r} or drop --device")
        self.space, self.predictor = space, predictor
        self.per_op = hasattr(predictor, "predict_archs")
        if not self.per_op and not predictor.is_fitted:
            raise PredictorError("the latency predictor is not fitted")
        self.description = f"{predictor.kind} predictor" + (f" ({predictor.device})" if predictor.device else "")
        self._memo: dict[bytes, float] = {}

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        if not self.per_op:
            X = self.space.encode_batch(self.space.from_genes(values))
            return np.asarray(self.predictor.predict(X), dtype=np.float64)
        if hasattr(self.space, "lut_sum"):
            return np.asarray(self.predictor.predict_archs(self.space, values), dtype=np.float64)
        return self._per_arch(values)

    def _per_arch(self, values: np.ndarray) -> np.ndarray:
        """Spaces without a vectorised table sum: each distinct arch's ops are listed once and summed (memoised,
        since an evolving population revisits archs)."""
        lookup = self._lookup()
        out = np.empty(values.shape[0])
        for i, row in enumerate(values):
            key = row.tobytes()
            if key not in self._memo:
                arch = self.space.from_genes(row[None])[0]
                try:
                    total = sum(lookup[op.key] for op in self.space.ops(arch))
                except KeyError as exc:
                    raise PredictorError(f"the latency table has no entry for op {exc.args[0]!r}") from None
                self._memo[key] = self._correct(total)
            out[i] = self._memo[key]
        return out

    def _lookup(self) -> dict[str, float]:
        cached = getattr(self, "_lookup_cache", None)
        if cached is None:
            p = self.predictor
            if hasattr(p, "lookup_for"):  # kernel-level: predict every op the space has, once
                cached = p.lookup_for(self.space, [getattr(self.space, "resolution", 224)])
            else:
                cached = dict(p.table_)
            self._lookup_cache = cached
        return cached

    def _correct(self, total: float) -> float:
        coef = getattr(self.predictor, "coef_", None)
        return float(coef[0] * total + coef[1]) if coef is not None and np.shape(coef) == (2,) else float(total)

    def allowed_genes(self) -> dict[int, list[int]]:
        """OFA against a lookup table: only the resolutions whose every op the table holds (a table is
        usually measured at one or a few)."""
        space, p = self.space, self.predictor
        if space.name != "ofa-mbv3" or p.kind != "lut" or getattr(p, "interpolate", False):
            return {}
        return {len(space.gene_choices()) - 1: p.covered_resolutions(space)}


class MeasuredLatency(LatencySource):
    """Real measurements per arch (a column of HELP's exhaustive NAS-Bench-201 table): searching against it
    finds the truly fastest archs on that device, which a benchmark can check against the exhaustive optimum."""

    def __init__(self, space: Any, archs: Sequence[Any], latency_ms: np.ndarray, *, label: str) -> None:
        genes = space.genes(list(archs))
        self.space = space
        self.index = {row.tobytes(): i for i, row in enumerate(np.asarray(genes, dtype=np.int64))}
        self.latency = np.asarray(latency_ms, dtype=np.float64)
        self.description = f"measured {label}"

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        rows = [self.index.get(row.tobytes(), -1) for row in values]
        if min(rows, default=0) < 0:
            missing = self.space.from_genes(values[rows.index(-1)][None])[0]
            raise PredictorError(f"no measurement for {self.space.arch_to_json(missing)}")
        return self.latency[rows]


def help_column(space: Any, device: str) -> MeasuredLatency:
    """HELP's measured NAS-Bench-201 latencies on ``device`` (all 15 625 archs)."""
    from tailorkit.predictors.datasets import load_nb201

    if space.name != "nb201":
        raise ConfigError("measured HELP columns cover every arch only for nb201 (FBNet's 5 000 archs are a "
                          "sample of its space: train a predictor on them with `tailor predictor train`)")
    data = load_nb201()
    return MeasuredLatency(space, [space.arch_from_dict({"arch": a}) for a in data.archs], data.y(device),
                           label=f"HELP nb201 {device}")


class AccuracySource:
    """An accuracy predictor over the space's archs, for whole populations."""

    def __init__(self, space: Any, predictor: Predictor) -> None:
        from tailorkit.search.accuracy import ENCODING

        if predictor.space != space.name or predictor.encoding != ENCODING or space.name != "ofa-mbv3":
            raise PredictorError(f"the accuracy predictor is for {predictor.space!r} ({predictor.encoding}); "
                                 f"accuracy predictors exist for ofa-mbv3 (`tailor supernet accuracy`)")
        self.space, self.predictor = space, predictor
        self.description = "accuracy predictor (digits supernet)"

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.clip(self.predictor.predict(self.space.one_hot(values)), 0.0, 1.0)


@dataclass
class Evaluator:
    """Scores gene-index arrays: latency, accuracy (if there is a source), reward, and the objectives NSGA-II
    minimises (latency, −accuracy)."""

    genome: Genome
    latency: LatencySource
    reward: Reward
    accuracy: AccuracySource | None = None

    def __post_init__(self) -> None:
        if self.reward.needs_accuracy and self.accuracy is None:
            raise ConfigError(f"the {self.reward.name} reward ranks archs by accuracy, and there is no accuracy "
                              "model here; use mnasnet-soft or mnasnet-hard for a latency-only search")
        # latencies the constraint filter computed since the last evaluation: the batch it passed is the batch
        # evaluated next, so its latencies are reused instead of predicted twice
        self._filtered: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, idx: np.ndarray) -> Evaluations:
        values = self.genome.values(idx)
        lat = self._latency(np.asarray(idx), values)
        acc = self.accuracy(values) if self.accuracy is not None else None
        objectives = lat[:, None] if acc is None else np.stack([lat, -acc], axis=1)
        return Evaluations(latency_ms=lat, accuracy=acc, reward=self.reward(acc, lat), objectives=objectives)

    def feasible(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        values = self.genome.values(idx)
        lat = self._checked(self.latency(values), values)
        if len(self._filtered) >= 64:  # checks with no evaluation in between: keep memory bounded
            self._filtered.clear()
        self._filtered.append((idx.copy(), lat))
        return self.reward.feasible(lat)

    def _latency(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Latency of each row: the filter's value where it checked the same genes (first by position in its
        first batch, which the filled batch mostly is, then by content among everything it checked), the
        source's prediction for the rest. The sources are pure functions of the genes, so reuse is exact."""
        filtered, self._filtered = self._filtered, []
        if not filtered:
            return self._checked(self.latency(values), values)
        first, first_lat = filtered[0]
        n = idx.shape[0]
        m = min(n, first.shape[0])
        lat = np.empty(n)
        lat[:m] = first_lat[:m]
        miss = np.flatnonzero(~(idx[:m] == first[:m]).all(axis=1))
        if m < n:
            miss = np.concatenate([miss, np.arange(m, n)])
        if miss.size:
            seen = first if len(filtered) == 1 else np.concatenate([g for g, _ in filtered])
            seen_lat = first_lat if len(filtered) == 1 else np.concatenate([x for _, x in filtered])
            if miss.size * seen.shape[0] <= 1 << 16:  # a few redrawn rows against a generation's checks
                eq = (idx[miss][:, None, :] == seen[None, :, :]).all(axis=2)
                hit = eq.any(axis=1)
                lat[miss[hit]] = seen_lat[eq[hit].argmax(axis=1)]
                miss = miss[~hit]
        if miss.size:
            lat[miss] = self._checked(self.latency(values[miss]), values[miss])
        return lat

    def _checked(self, lat: np.ndarray, values: np.ndarray) -> np.ndarray:
        """A latency that is not a positive number would make the MnasNet reward infinite or NaN: a model-level
        predictor extrapolating below zero is clipped to a microsecond (with a warning); NaN is an error."""
        lat = np.asarray(lat, dtype=np.float64)
        bad = ~np.isfinite(lat)
        if bad.any():
            arch = self.genome.space.from_genes(values[np.flatnonzero(bad)[:1]])[0]
            raise PredictorError(f"the latency source gave {lat[bad][0]} ms for "
                                 f"{self.genome.space.arch_to_json(arch)}")
        low = lat <= 0
        if low.any():
            log.warning("latency predictor gave %d non-positive latencies (min %.4g ms); clipped to 1e-3 ms",
                        int(low.sum()), float(lat.min()))
            lat = np.where(low, 1e-3, lat)
        return lat
