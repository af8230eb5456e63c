"""Lookup-table sum: a model's latency is the sum of its ops' table entries, optionally corrected.

The op sum misses what the runtime does across op boundaries (fusion, layout changes, cache effects): nn-Meter's
fusion rules exist for that gap. Here a linear correction ``a · Σ + b``, fitted robustly (Theil–Sen) on a few
measured whole models, absorbs its systematic part. With ``by_size`` (the default) the ops are also grouped by
the spatial size of their output (an OFA stage), and each group's entries get their own multiplier,
ridge-shrunk towards the common line: how much more an op costs inside a network than alone depends on how
large its feature maps are (cache), which one line cannot follow. On a 2-core CPU, fitted on 8 paired-measured
w1.2 subnets, that took the held-out mean |error| from 2.2 % to 1.6 % and from 1.6 % to 0.95 % on two
independent sets of 40 and 30 subnets (fitted on 16: 2.0 → 1.3 % and 1.5 → 0.8 %).

An op the table lacks is an error naming it, unless the predictor was built with ``interpolate=True``: then a
:class:`~tailorkit.predictors.kernel.KernelPredictor` fitted on the table's own entries fills the gaps (and only
the gaps — measured entries are always used as measured).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Self

import numpy as np

from tailorkit.core.errors import ConfigError, PredictorError
from tailorkit.core.table import LatencyTable
from tailorkit.predictors.base import Predictor, predictors
from tailorkit.predictors.kernel import COLUMNS as KERNEL_COLUMNS
from tailorkit.predictors.kernel import KernelPredictor


@predictors.register("lut")
class LutSumPredictor(Predictor):
    """``X`` is an op-count matrix over :attr:`keys_` (a space's ``op_counts``); ``predict_archs`` skips that
    matrix and gathers table entries per block for whole populations at once."""

    kind = "lut"

    def __init__(self, table: LatencyTable | None = None, *, correct: bool = True, by_size: bool = True,
                 space: str | None = None, encoding: str | None = "op-counts", device: str | None = None,
                 interpolate: bool = False) -> None:
        super().__init__(space=space or (table.space if table is not None else None), encoding=encoding,
                         device=device or (table.device.name if table is not None and table.device else None))
        self.correct = correct
        self.by_size = by_size
        self.interpolate = interpolate
        # the speed reference of a calibration against one (see calibrate_against_reference), else None
        self.reference_: dict[str, Any] | None = None
        # multiplier per output size (see size_group) fitted with the correction; sizes absent: 1
        self.size_scale_: dict[str, float] = {}
        if table is not None:
            self.keys_ = list(table.entries)
            self.latency_ = np.array([lat.mean for lat in table.entries.values()], dtype=np.float64)
            self.coef_ = np.array([1.0, 0.0])
            self.n_features_in_ = len(self.keys_)
            if interpolate:
                self.kernel_ = KernelPredictor(bags=1).fit_table(table)

    def get_params(self) -> dict[str, Any]:
        return {"correct": self.correct, "by_size": self.by_size, "interpolate": self.interpolate}

    @property
    def table_(self) -> dict[str, float]:
        """The entries the correction line applies to: the table's, times their size group's multiplier."""
        self._check_fitted()
        return dict(zip(self.keys_, (self.latency_ * self.scale_for(self.keys_)).tolist(), strict=True))

    def scale_for(self, keys: list[str]) -> np.ndarray:
        """The fitted size multiplier of each op key (1 where the fit gave its size none)."""
        return np.array([self.size_scale_.get(size_group(k), 1.0) for k in keys], dtype=np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit the end-to-end correction on measured whole models (X: their op counts, y: measured ms)."""
        self._check_fitted()  # the table itself is the fitted part; this refines it
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        self.size_scale_ = {}
        if self.correct:
            self.coef_ = fit_correction(X @ self.latency_, y)
            if self.by_size:
                self.size_scale_, self.coef_ = fit_size_scales(X, self.latency_, self.keys_, y, self.coef_)
        self.__dict__.pop("_lookup_cache", None)
        self.reference_ = None  # measured without a speed reference (calibrate_against_reference sets one after)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = self._check_X(X)
        return self.coef_[0] * (X @ self._scaled_latency) + self.coef_[1]

    def predict_archs(self, space: Any, array: np.ndarray) -> np.ndarray:
        """Latency of a batch of archs in ``space``'s array form (e.g. OFA's k/e/d/r rows)."""
        self._check_fitted()
        lookup = self._lookup
        if self.interpolate:
            array = np.asarray(array)
            resolutions = np.unique(array[:, -1]).tolist() if array.ndim == 2 and array.size else []
            missing = [op for r in resolutions for op in space.all_ops(int(r)) if op.key not in lookup]
            if missing:
                filled = self.kernel_.predict_ops(missing) * self.scale_for([op.key for op in missing])
                lookup = {**lookup, **dict(zip((op.key for op in missing), filled.tolist(), strict=True))}
        try:
            sums = space.lut_sum(array, lookup)
        except ConfigError as exc:
            raise PredictorError(f"lookup table {self.device or ''}: {exc}") from None
        return self.coef_[0] * sums + self.coef_[1]

    def covered_resolutions(self, space: Any) -> list[int]:
        """The resolutions of an OFA-style space whose every op this table holds (a table is usually measured at
        one or a few); a PredictorError when there is none (a table of another width, say)."""
        keys = set(self.keys_)
        missing = {r: {op.key for op in space.all_ops(r)} - keys for r in space.gene_choices()[-1]}
        resolutions = [r for r, m in missing.items() if not m]
        heads = [r for r, m in missing.items() if all(k.startswith("Logits-") for k in m)]
        if not resolutions and heads and getattr(space, "num_classes", None) is not None:
            raise PredictorError(f"the lookup table lacks the {space.num_classes}-class classifier at resolution "
                                 f"{heads[0]} (it has the rest of those ops): `tailor table build --classes "
                                 f"{space.num_classes}` measures it")
        if not resolutions:
            raise PredictorError(f"the lookup table holds no resolution of {getattr(space, 'variant', space.name)} "
                                 "completely (is it a table of another width? see `tailor table show`)")
        return resolutions

    @property
    def _lookup(self) -> Mapping[str, float]:
        cached = getattr(self, "_lookup_cache", None)
        if cached is None:
            cached = self._lookup_cache = self.table_
        return cached

    @property
    def _scaled_latency(self) -> np.ndarray:
        """``latency_`` times the size multipliers, in ``keys_`` order (the cached lookup's values)."""
        return np.fromiter(self._lookup.values(), dtype=np.float64, count=len(self.keys_))

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        scalars: dict[str, Any] = {} if self.reference_ is None else {"reference": self.reference_}
        if self.size_scale_:
            scalars["size_scale"] = self.size_scale_
        arrays = {"latency": self.latency_, "coef": self.coef_}
        blobs = {"keys.json": json.dumps(self.keys_)}
        if self.interpolate:  # the gap filler travels inside the same file, under its own prefix
            k_scalars, k_arrays, k_blobs = self.kernel_._fitted_state()
            scalars["kernel"] = k_scalars
            arrays.update({f"kernel.{n}": a for n, a in k_arrays.items()})
            blobs.update({f"kernel.{n}": b for n, b in k_blobs.items()})
        return scalars, arrays, blobs

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        self.keys_ = list(json.loads(blobs["keys.json"]))
        self.latency_ = np.asarray(arrays["latency"], dtype=np.float64)
        self.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        if len(self.keys_) != self.latency_.size or self.coef_.shape != (2,):
            raise ValueError("keys and latencies do not match")
        self.reference_ = _checked_reference(scalars.get("reference"))
        sizes = scalars.get("size_scale", {})  # files written before the size groups: none
        if not isinstance(sizes, dict) or not all(isinstance(k, str) and isinstance(v, (int, float)) and v > 0
                                                  for k, v in sizes.items()):
            raise ValueError("the size multipliers are malformed")
        self.size_scale_ = {k: float(v) for k, v in sizes.items()}
        if self.interpolate:
            self.kernel_ = KernelPredictor(bags=1)
            self.kernel_._restore(scalars["kernel"], _unprefixed(arrays, "kernel."), _unprefixed(blobs, "kernel."))
            self.kernel_.n_features_in_ = len(KERNEL_COLUMNS)


def _unprefixed(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in mapping.items() if k.startswith(prefix)}


def calibration_archs(space: Any, predictor: LutSumPredictor, n: int, seed: int = 0) -> list[Any]:
    """``n`` archs spread over the predicted latency range of the resolutions the table covers: the smallest and
    the largest, then random ones picked to fill the range evenly (so the correction line is pinned at both
    ends, not fitted on a cluster of mid-size archs)."""
    if n < 2:
        raise ConfigError("calibration needs at least 2 measured archs")
    if not hasattr(space, "op_counts"):
        raise ConfigError(f"end-to-end calibration of lookup tables is implemented for ofa-mbv3, not {space.name!r}")
    resolutions = predictor.covered_resolutions(space)
    rng = np.random.default_rng(seed)
    pool = [space.sample(rng, int(rng.choice(resolutions))) for _ in range(50 * n)]
    archs = [space.smallest(min(resolutions)), space.largest(max(resolutions))]
    lat = predictor.predict_archs(space, space.to_array(pool))
    for q in np.linspace(0, 1, n)[1:-1]:
        archs.append(pool[int(np.argmin(np.abs(lat - np.quantile(lat, q))))])
    return archs


def measure_and_correct(predictor: LutSumPredictor, space: Any, archs: list[Any],
                        measure: Callable[[Any], float], rounds: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Measure each arch end to end (``measure``: arch → ms) and fit the linear correction on them; returns the
    (raw table sums, measured) pairs. With ``rounds`` > 1 every arch is measured once per round, round-robin,
    and its median kept: a slow episode of the machine (a noisy neighbour, a frequency drop) then hits one
    round of every arch instead of all rounds of a few, which would tilt the fitted line."""
    if rounds < 1:
        raise ConfigError("calibration needs at least 1 round")
    X = space.op_counts(space.to_array(archs), predictor.keys_)
    runs = np.array([[measure(a) for a in archs] for _ in range(rounds)], dtype=np.float64)
    measured = np.median(runs, axis=0)
    sums = X @ predictor.latency_
    predictor.fit(X, measured)
    return sums, measured


def calibrate_against_reference(predictor: LutSumPredictor, space: Any, archs: list[Any], reference: Any,
                                measure: Callable[[Any], tuple[float, float]], rounds: int = 1,
                                ) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`measure_and_correct`, but ``measure(arch)`` runs the arch in alternation with the ``reference``
    arch and returns (arch / reference ratio, the reference's ms). The correction is fitted on ratio × the
    reference's median ms over the whole calibration, which the predictor keeps as :attr:`reference_`: a
    later closed-loop measurement paired with the same reference is converted back at the calibration's speed,
    so the machine getting faster or slower in between is not counted as prediction error."""
    if rounds < 1:
        raise ConfigError("calibration needs at least 1 round")
    pairs = np.array([[measure(a) for a in archs] for _ in range(rounds)], dtype=np.float64)
    reference_ms = float(np.median(pairs[:, :, 1]))
    normalised = np.median(pairs[:, :, 0], axis=0) * reference_ms
    X = space.op_counts(space.to_array(archs), predictor.keys_)
    predictor.fit(X, normalised)
    predictor.reference_ = {"space": space.name, "width": float(getattr(space, "width", 1.0)),
                            "num_classes": getattr(space, "num_classes", None),
                            "arch": space.arch_to_dict(reference), "ms": reference_ms,
                            "spread": float(np.ptp(pairs[:, :, 1]) / reference_ms)}
    return X @ predictor.latency_, normalised


def _checked_reference(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not {"space", "width", "arch", "ms"} <= set(data) or not (
            isinstance(data["ms"], (int, float)) and data["ms"] > 0):
        raise ValueError("the speed reference is malformed")
    return dict(data)


SIZE_RIDGE = 0.01
"""Ridge weight (× mean squared group sum × models) of the size multipliers' deviations from the common line:
chosen on 40 paired-measured w1.2 subnets (0.003–0.03 all did well; 0.3 and more fall back to the line) and
confirmed on 30 others measured later, and on 16 picked as :func:`calibration_archs` picks them."""


def size_group(key: str) -> str:
    """The output spatial size an op key states (``…-output:40x40x32-…`` → ``40x40``), else ``other``."""
    m = _OUTPUT_SIZE.search(key)
    return f"{m.group(1)}x{m.group(2)}" if m else "other"


_OUTPUT_SIZE = re.compile(r"output:(\d+)x(\d+)x\d+")


def fit_size_scales(X: np.ndarray, latency: np.ndarray, keys: list[str], measured: np.ndarray,
                    coef: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Per-size multipliers around the fitted line ``coef`` = [a, b]: the residuals of the line are regressed on
    each size group's share of the table sum (ridge, :data:`SIZE_RIDGE`), so the model becomes
    Σ_g (a + d_g) · sum_g + b'. Returns ({group: (a + d_g) / a}, [a, b']); no groups (and ``coef`` unchanged)
    when too few models were measured or a multiplier leaves 0.5–2 (a fit that chases noise)."""
    groups = [size_group(k) for k in keys]
    names = sorted(set(groups))
    if len(measured) < 4 or len(names) < 2 or coef[0] <= 0:
        return {}, coef
    index = {g: i for i, g in enumerate(names)}
    onehot = np.zeros((len(keys), len(names)))
    onehot[np.arange(len(keys)), [index[g] for g in groups]] = 1.0
    F = X @ (latency[:, None] * onehot)  # each model's table sum per size group
    a, b = float(coef[0]), float(coef[1])
    residual = measured - (a * F.sum(axis=1) + b)
    Fc = F - F.mean(axis=0)
    penalty = SIZE_RIDGE * float(np.mean(F**2)) * len(measured)
    d = np.linalg.solve(Fc.T @ Fc + penalty * np.eye(len(names)), Fc.T @ (residual - residual.mean()))
    scale = (a + d) / a
    if not np.all((scale > 0.5) & (scale < 2.0)):
        return {}, coef
    offset = b + float(residual.mean()) - float(F.mean(axis=0) @ d)
    return dict(zip(names, scale.tolist(), strict=True)), np.array([a, offset])


def fit_correction(sums: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``[a, b]`` of the end-to-end correction ``a · Σ + b`` from table sums and whole-model measurements."""
    sums = np.asarray(sums, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    ratio = np.array([float(np.median(measured / sums)), 0.0])
    if len(sums) < 3 or np.ptp(sums) == 0:
        return ratio  # too few (or identical) models pin only a ratio
    # Theil–Sen: a few whole-model runs hit by interrupts must not tilt the line (least squares on 10 points
    # with one 2× outlier did, on a shared machine)
    from scipy.stats import theilslopes

    a, b, *_ = theilslopes(measured, sums, method="joint")
    return np.array([a, b]) if a > 0 else ratio
