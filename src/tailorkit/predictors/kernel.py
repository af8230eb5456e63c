"""Kernel-level prediction (nn-Meter / LitePred style): one regressor per op type over the op's shape and cost
features, trained on single-op measurements, so that ops nobody measured — another resolution, another width —
get a latency too; a model's latency is the sum over its ops.

Each op type's regressor is a bag of bootstrap fits. A fit is a non-negative linear cost model — latency ≈ c₀ +
Σ cᵢ·costᵢ over multiply-accumulates per kind of kernel (1×1, dense k×k, depthwise, squeeze-excite), activation
and weight elements moved — fitted for relative error, times a small gradient-boosted correction of its log
ratio for what the cost model misses (cache steps, kernel choices). The linear part extrapolates sensibly
beyond the measured shapes, which trees alone cannot; the spread of the bag on an op is the uncertainty that
adaptive sampling (:func:`adaptive_sample`) uses to pick what to measure next.

The ops are the blocks a table measures (an MBConv block is one op, timed as a single-op model). ONNX Runtime
fuses each conv with its batch norm and activation, so a block runs as a few fused kernels, and the block's
time includes them all; what happens between blocks (layout changes, cache effects) is what the LUT-sum
correction accounts for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from tailorkit.core.errors import PredictorError
from tailorkit.core.records import OpSpec
from tailorkit.core.table import LatencyTable
from tailorkit.predictors.base import Predictor, predictors

log = logging.getLogger(__name__)

# Op types with a cost model; a new type is appended (the index is stored in encodings and files).
OP_TYPES = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits", "conv")
# The encoding of one op: what it is and its shapes; every cost is derived from these.
COLUMNS = ("op_type", "h_in", "w_in", "c_in", "h_out", "w_out", "c_out", "kernel", "stride", "mid", "groups",
           "idskip", "se", "hswish")
COSTS = ("one", "mac_1x1", "mac_kxk", "mac_dw", "mac_se", "act", "weights", "elementwise")
_MIN_GBM_ROWS = 16  # below this a tree correction only memorises noise


def encode_ops(ops: Sequence[OpSpec]) -> np.ndarray:
    """The (n, 14) encoding over :data:`COLUMNS`. Vector inputs (a classifier after pooling) count as 1×1×C."""
    rows = []
    for op in ops:
        if op.op_type not in OP_TYPES:
            raise PredictorError(f"kernel: no cost model for op type {op.op_type!r} (op {op.key}); known: "
                                 f"{', '.join(OP_TYPES)}")
        hi, wi, ci = _hwc(op.input_shape)
        ho, wo, co = _hwc(op.output_shape)
        rows.append((OP_TYPES.index(op.op_type), hi, wi, ci, ho, wo, co, op.kernel, op.stride, op.expand,
                     op.groups, int(op.idskip), int(op.se), int(op.activation == "hswish")))
    return np.array(rows, dtype=np.float64).reshape(-1, len(COLUMNS))


def _hwc(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    return 1, 1, int(np.prod(shape))


def op_costs(X: np.ndarray) -> np.ndarray:
    """Work and traffic of each encoded op over :data:`COSTS` (multiply-accumulates and elements, not bytes:
    the dtype is one per table)."""
    t, hi, wi, ci, ho, wo, co, k, s, mid, g, skip, se, _ = X.T
    conv_type = (t == OP_TYPES.index("Conv")) | (t == OP_TYPES.index("conv")) | (t == OP_TYPES.index("Conv_1")) \
        | (t == OP_TYPES.index("Conv_2"))
    mb = t == OP_TYPES.index("expanded_conv")
    logits = t == OP_TYPES.index("Logits")
    pool = t == OP_TYPES.index("AvgPool2D")
    in_el, out_el = hi * wi * ci, ho * wo * co
    dense = ho * wo * co * k * k * ci / np.maximum(g, 1)
    has_expand = mb & (mid != ci)
    se_mid = np.maximum(8, np.round(mid / 4 / 8) * 8)
    zeros = np.zeros_like(t)
    mac_1x1 = np.where(conv_type & (k == 1), dense, zeros) + np.where(logits, ci * co, zeros) \
        + np.where(mb, has_expand * hi * wi * ci * mid + ho * wo * mid * co, zeros)
    mac_kxk = np.where(conv_type & (k > 1), dense, zeros)
    mac_dw = np.where(mb, ho * wo * mid * k * k, zeros)
    mac_se = np.where(mb & (se > 0), 2 * mid * se_mid + 2 * ho * wo * mid, zeros)
    act = in_el + out_el + np.where(mb, has_expand * hi * wi * mid + ho * wo * mid, zeros)
    weights = np.where(conv_type, co * k * k * ci / np.maximum(g, 1), zeros) + np.where(logits, ci * co, zeros) \
        + np.where(mb, has_expand * ci * mid + mid * k * k + mid * co + (se > 0) * 2 * mid * se_mid, zeros)
    elementwise = np.where(pool, in_el, zeros) + skip * out_el
    return np.stack([np.ones_like(t), mac_1x1, mac_kxk, mac_dw, mac_se, act, weights, elementwise], axis=1)


def _gbm_features(X: np.ndarray, costs: np.ndarray) -> np.ndarray:
    return np.log1p(np.concatenate([X[:, 1:], costs[:, 1:]], axis=1))


@predictors.register("kernel")
class KernelPredictor(Predictor):
    """``X`` is :func:`encode_ops` of single ops and ``y`` their latencies (ms); use :meth:`fit_table` /
    :meth:`predict_ops` to skip the encoding, :meth:`predict_archs` for whole networks of a space."""

    kind = "kernel"

    def __init__(self, *, bags: int = 8, n_estimators: int = 120, learning_rate: float = 0.05, seed: int = 0,
                 space: str | None = None, encoding: str | None = "op-kernel", device: str | None = None) -> None:
        super().__init__(space=space, encoding=encoding, device=device)
        if bags < 1 or n_estimators < 0 or not 0 < learning_rate <= 1:
            raise PredictorError("kernel: bags >= 1, n_estimators >= 0 and 0 < learning_rate <= 1, please")
        self.bags, self.n_estimators, self.learning_rate, self.seed = bags, n_estimators, learning_rate, seed

    def get_params(self) -> dict[str, Any]:
        return {"bags": self.bags, "n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                "seed": self.seed}

    # ------------------------------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        X = self._check_ops_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        if X.shape[0] == 0:
            raise PredictorError("kernel: nothing to fit on")
        rng = np.random.default_rng(self.seed)
        self.models_: dict[int, list[_CostFit]] = {}
        self.__dict__.pop("_lookup_cache", None)
        for t in np.unique(X[:, 0]).astype(int):
            rows = np.flatnonzero(X[:, 0] == t)
            fits = []
            for b in range(self.bags):
                # bag 0 sees every row, so a one-bag predictor is the plain fit
                pick = rows if b == 0 else rng.choice(rows, rows.size, replace=True)
                fits.append(_CostFit.fit(X[pick], y[pick], self.n_estimators, self.learning_rate,
                                         seed=self.seed + b))
            self.models_[int(t)] = fits
        self.n_features_in_ = len(COLUMNS)
        self.n_train_ = {OP_TYPES[t]: int((X[:, 0] == t).sum()) for t in self.models_}
        return self

    def fit_table(self, tables: LatencyTable | Sequence[LatencyTable]) -> Self:
        """Fit on every entry of one or more tables (op key → measured mean)."""
        ops, y = table_rows(tables)
        return self.fit(encode_ops(ops), y)

    # --------------------------------------------------------------------------------------- prediction

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.exp(self._log_bag(X).mean(axis=0))

    def uncertainty(self, X: np.ndarray, unseen: float | None = None) -> np.ndarray:
        """Spread of the bag in log space (≈ relative standard deviation): large where the training ops do
        not pin the prediction down. Ops of a type never trained on are an error, or ``unseen`` if given."""
        self._check_fitted()
        X = self._check_ops_X(X)
        known = np.isin(X[:, 0], list(self.models_))
        if unseen is None or known.all():
            return self._log_bag(X).std(axis=0)
        out = np.full(X.shape[0], float(unseen))
        if known.any():
            out[known] = self._log_bag(X[known]).std(axis=0)
        return out

    def predict_ops(self, ops: Sequence[OpSpec]) -> np.ndarray:
        return self.predict(encode_ops(ops))

    def predict_archs(self, space: Any, array: np.ndarray) -> np.ndarray:
        """Σ of predicted op latencies for a batch of archs of ``space``: every distinct op the batch can use is
        predicted once, then summed per arch like a lookup table (so it runs at lookup-table speed)."""
        self._check_fitted()
        array = np.asarray(array)
        lookup = self.lookup_for(space, np.unique(array[:, -1]).tolist() if array.ndim == 2 and array.size else [])
        return space.lut_sum(array, lookup)

    def lookup_for(self, space: Any, resolutions: Sequence[int]) -> dict[str, float]:
        """Predicted latency of every op ``space`` has at these resolutions (a synthetic lookup table). Each
        resolution's ops are predicted once per fitted model and kept, so repeated batches (a search's
        generations) cost a lookup-table sum."""
        cache: dict[tuple[Any, ...], dict[str, float]] = self.__dict__.setdefault("_lookup_cache", {})
        out: dict[str, float] = {}
        for r in resolutions:
            key = (id(self.models_), getattr(space, "name", ""), getattr(space, "width", None), int(r))
            if key not in cache:
                ops = list({op.key: op for op in space.all_ops(int(r))}.values())
                cache[key] = dict(zip((op.key for op in ops), self.predict_ops(ops).tolist(), strict=True)) \
                    if ops else {}
            out.update(cache[key])
        return out

    def _log_bag(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = self._check_ops_X(X)
        out = np.empty((self.bags, X.shape[0]))
        for t in np.unique(X[:, 0]).astype(int):
            fits = self.models_.get(int(t))
            if fits is None:
                raise PredictorError(f"kernel: no {OP_TYPES[t]} ops were in the training data; measure some "
                                     f"(this predictor knows {', '.join(self.n_train_)})")
            rows = np.flatnonzero(X[:, 0] == t)
            for b, fit in enumerate(fits):
                out[b, rows] = fit.log_predict(X[rows])
        return out

    def _check_ops_X(self, X: Any, fitting: bool = False) -> np.ndarray:
        X = self._check_X(X, fitting)
        if X.shape[1] != len(COLUMNS):
            raise PredictorError(f"kernel: op encodings have {len(COLUMNS)} columns ({', '.join(COLUMNS)}), "
                                 f"got {X.shape[1]}")
        types = X[:, 0]
        if ((types < 0) | (types >= len(OP_TYPES)) | (types != np.round(types))).any():
            raise PredictorError(f"kernel: column op_type must index {OP_TYPES}")
        if (X[:, 1:11] < 0).any():
            raise PredictorError("kernel: shapes, kernel, stride and groups must be >= 0")
        return X

    # -------------------------------------------------------------------------------------- persistence

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        arrays, blobs = {}, {}
        for t, fits in self.models_.items():
            for b, fit in enumerate(fits):
                arrays[f"coef_{t}_{b}"] = fit.coef
                arrays[f"scale_{t}_{b}"] = fit.scale
                if fit.booster is not None:
                    blobs[f"gbm_{t}_{b}.txt"] = fit.booster.model_to_string()
        return {"n_train_": self.n_train_, "types": sorted(self.models_)}, arrays, blobs

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        import lightgbm as lgb  # a core dependency, imported here to keep `import tailorkit` light

        self.n_train_ = dict(scalars["n_train_"])
        self.models_ = {}
        for t in scalars["types"]:
            fits = []
            for b in range(self.bags):
                text = blobs.get(f"gbm_{t}_{b}.txt")
                coef, scale = arrays[f"coef_{t}_{b}"], arrays[f"scale_{t}_{b}"]
                if coef.shape != (len(COSTS),) or scale.shape != (len(COSTS),):
                    raise ValueError(f"cost model {t}/{b} has the wrong shape")
                try:
                    booster = lgb.Booster(model_str=text) if text else None
                except lgb.basic.LightGBMError as exc:
                    raise ValueError(f"gradient-boosting model {t}/{b} is unreadable: {exc}") from None
                fits.append(_CostFit(coef, scale, booster))
            self.models_[int(t)] = fits


@dataclass(frozen=True)
class _CostFit:
    coef: np.ndarray  # non-negative weights on the scaled costs
    scale: np.ndarray  # cost column scales (max over the training rows)
    booster: Any | None  # LightGBM correction of log(measured / linear), or None

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, n_estimators: int, learning_rate: float, seed: int) -> _CostFit:
        from scipy.optimize import nnls

        costs = op_costs(X)
        scale = np.where(costs.max(axis=0) > 0, costs.max(axis=0), 1.0)
        A = costs / scale
        # dividing each row by its latency makes least squares minimise relative error, the metric that
        # matters when small and large ops are summed into one network
        try:
            coef, _ = nnls(A / y[:, None], np.ones_like(y), maxiter=50 * A.shape[1])
        except RuntimeError:  # no convergence: the constant fallback below takes over
            coef = np.zeros(len(COSTS))
        linear = A @ coef
        if not (linear > 0).all():  # a degenerate fit (e.g. one row): fall back to a constant, the median
            coef = np.zeros(len(COSTS))
            coef[0] = float(np.median(y))
            linear = A @ coef
        booster = None
        if n_estimators and X.shape[0] >= _MIN_GBM_ROWS:
            import lightgbm as lgb  # a core dependency, imported here to keep `import tailorkit` light

            params = {"objective": "regression", "learning_rate": learning_rate, "num_leaves": 8,
                      "min_data_in_leaf": 3, "lambda_l2": 1.0, "seed": seed, "deterministic": True,
                      "num_threads": 1, "verbose": -1}
            residual = np.log(y / linear)
            data = lgb.Dataset(_gbm_features(X, costs), residual, params={"verbose": -1, "min_data_in_bin": 1})
            booster = lgb.train(params, data, n_estimators)
        return cls(coef, scale, booster)

    def log_predict(self, X: np.ndarray) -> np.ndarray:
        costs = op_costs(X)
        linear = np.maximum((costs / self.scale) @ self.coef, 1e-9)
        out = np.log(linear)
        if self.booster is not None:
            out += self.booster.predict(_gbm_features(X, costs), num_threads=1)
        return out


def table_rows(tables: LatencyTable | Sequence[LatencyTable]) -> tuple[list[OpSpec], np.ndarray]:
    """Ops and mean latencies of one or more tables (later tables win for a repeated key)."""
    merged: dict[str, float] = {}
    for table in [tables] if isinstance(tables, LatencyTable) else tables:
        merged.update({key: lat.mean for key, lat in table.entries.items()})
    zero = next((key for key, ms in merged.items() if not ms > 0), None)
    if zero is not None:
        raise PredictorError(f"kernel: op {zero!r} has latency {merged[zero]!r} ms; a cost model needs positive "
                             "latencies")
    if not merged:
        raise PredictorError("kernel: the tables hold no entries")
    return [OpSpec.from_key(k) for k in merged], np.array(list(merged.values()))


# ------------------------------------------------------------------------------------- adaptive sampling


def perturbed_ops(seeds: Sequence[OpSpec], rng: np.random.Generator, n: int, *,
                  spatial: tuple[float, float] = (0.5, 1.5),
                  channels: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)) -> list[OpSpec]:
    """Candidate ops around ``seeds``: the same kinds of op at other input sizes and channel widths (what
    another resolution or width multiplier of the space would run), deduplicated, ``n`` at most."""
    from tailorkit.spaces.base import make_divisible

    seeds = [op for op in seeds if op.op_type in OP_TYPES]
    if not seeds:
        raise PredictorError("kernel: no seed ops with a cost model to sample around")
    out: dict[str, OpSpec] = {}
    for _ in range(20 * n):
        if len(out) >= n:
            break
        op = seeds[int(rng.integers(len(seeds)))]
        try:
            candidate = _rescaled(op, float(rng.uniform(*spatial)), float(rng.choice(channels)), make_divisible)
        except ValueError:
            continue
        out.setdefault(candidate.key, candidate)
    return list(out.values())


def _rescaled(op: OpSpec, spatial: float, width: float, divisible: Callable[[float], int]) -> OpSpec:
    from dataclasses import replace

    (hi, wi, ci), (ho, wo, co) = _hwc(op.input_shape), _hwc(op.output_shape)
    spatial_op = len(op.input_shape) == 3 and hi > 1
    h = max(1, round(hi * spatial)) if spatial_op else hi
    w = max(1, round(wi * spatial)) if spatial_op else wi
    ci2 = ci if op.op_type == "Conv" else divisible(ci * width)  # the stem reads RGB
    co2 = co if op.op_type == "Logits" else divisible(co * width)  # classes stay classes
    ho2, wo2 = (-(-h // op.stride), -(-w // op.stride)) if spatial_op else (ho, wo)
    if op.op_type == "AvgPool2D":  # global pooling: any input size to 1×1, channels unchanged
        co2, ho2, wo2 = ci2, 1, 1
    mid = divisible(op.expand / ci * ci2) if op.op_type == "expanded_conv" else op.expand
    if op.op_type == "expanded_conv" and op.expand == ci:
        mid = ci2  # keep "no expand conv" blocks as they are
    idskip = op.idskip and ci2 == co2 and op.stride == 1
    shape_in = (h, w, ci2) if len(op.input_shape) == 3 else (ci2,)
    shape_out = (ho2, wo2, co2) if len(op.output_shape) == 3 else (co2,)
    return replace(op, input_shape=shape_in, output_shape=shape_out, expand=mid, idskip=idskip)


@dataclass(frozen=True)
class SamplingRound:
    round: int
    measured: int  # ops measured so far
    picked: int  # ops picked this round
    mean_uncertainty: float  # mean bag spread over the remaining candidates before picking
    picked_uncertainty: float  # mean bag spread of the picked ops


def adaptive_sample(predictor: KernelPredictor, candidates: Sequence[OpSpec],
                    measure: Callable[[list[OpSpec]], Mapping[str, float]], *, rounds: int, per_round: int,
                    initial: Mapping[str, float] | None = None, initial_random: int = 0, seed: int = 0,
                    progress: Callable[[SamplingRound], None] | None = None) -> list[SamplingRound]:
    """Query by committee: fit, measure the ``per_round`` candidates the bag disagrees on most, refit; repeat.

    ``initial`` holds measurements already made (op key → ms); with none, one random candidate of every op type
    and then random others up to ``initial_random`` are measured first. ``measure`` takes ops and returns their
    latencies by key (e.g. through the profiler into a table, so that an interrupted run resumes). The
    predictor ends fitted on everything measured.
    """
    if rounds < 0 or per_round < 1:
        raise PredictorError("kernel sampling: rounds >= 0 and per_round >= 1, please")
    rng = np.random.default_rng(seed)
    pool = {op.key: op for op in candidates}
    known: dict[str, float] = dict(initial or {})
    ops_known: dict[str, OpSpec] = {k: OpSpec.from_key(k) for k in known}
    if not known:
        if initial_random < 1:
            raise PredictorError("kernel sampling: give measured ops or initial_random >= 1")
        # one op of every type first, so that no type is left without a model
        order = [pool[k] for k in rng.permutation(list(pool))]
        by_type = {op.op_type: op for op in reversed(order)}
        first = list(by_type.values())
        first += [op for op in order if op.key not in {f.key for f in first}][:max(0, initial_random - len(first))]
        known.update(_measured(measure, first))
        ops_known.update({op.key: op for op in first})
    history = []
    for r in range(1, rounds + 1):
        _refit(predictor, ops_known, known)
        remaining = [op for key, op in pool.items() if key not in known]
        if not remaining:
            break
        spread = predictor.uncertainty(encode_ops(remaining), unseen=np.inf)
        order = np.argsort(-spread, kind="stable")[:per_round]
        picked = [remaining[i] for i in order]
        known.update(_measured(measure, picked))
        ops_known.update({op.key: op for op in picked})
        finite = np.isfinite(spread)
        step = SamplingRound(r, len(known), len(picked), float(spread[finite].mean()) if finite.any() else np.inf,
                             float(spread[order].mean()))
        log.info("kernel sampling round %d: picked %d ops (spread %.3f vs %.3f overall), %d measured", r,
                 step.picked, step.picked_uncertainty, step.mean_uncertainty, step.measured)
        history.append(step)
        if progress:
            progress(step)
    _refit(predictor, ops_known, known)
    return history


def _measured(measure: Callable[[list[OpSpec]], Mapping[str, float]], ops: list[OpSpec]) -> dict[str, float]:
    got = measure(ops)
    missing = [op.key for op in ops if op.key not in got]
    if missing:
        raise PredictorError(f"kernel sampling: the measurement returned nothing for {missing[0]!r}")
    return {op.key: float(got[op.key]) for op in ops}


def _refit(predictor: KernelPredictor, ops: Mapping[str, OpSpec], known: Mapping[str, float]) -> None:
    keys = list(known)
    predictor.fit(encode_ops([ops[k] for k in keys]), np.array([known[k] for k in keys]))


def store_measurer(device: Any, store: Any, table: str, settings: Any,
                   progress: Callable[[Any], None] | None = None) -> Callable[[list[OpSpec]], dict[str, float]]:
    """A ``measure`` for :func:`adaptive_sample` that profiles single ops into ``table`` of ``store`` (each
    measurement committed as it completes) and reads the means back."""
    from tailorkit.profiler.tables import build_table

    def measure(ops: list[OpSpec]) -> dict[str, float]:
        build_table(ops, table, device, store, settings, meta={"purpose": "kernel-sampling"}, progress=progress)
        entries = store.table(table, device=device.info(settings).fingerprint, settings=settings.fingerprint).entries
        return {op.key: entries[op.key].mean for op in ops if op.key in entries}

    return measure


__all__ = ["COLUMNS", "COSTS", "OP_TYPES", "KernelPredictor", "SamplingRound", "adaptive_sample", "encode_ops",
           "op_costs", "perturbed_ops", "store_measurer", "table_rows"]
