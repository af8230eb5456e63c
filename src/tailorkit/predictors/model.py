"""Model-level predictors (HAT / BRP-NAS style): an architecture's encoding → its end-to-end latency.

Three learners behind the same interface: gradient-boosted trees (LightGBM, saved in its own text format), an
MLP (torch for training, NumPy for prediction, weights saved as arrays) and an additive model over choice counts
fitted with a bounded tolerance-band loss; ``fit_best`` picks among them on held-out training rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import numpy as np

from tailorkit.core.errors import ConfigError, PredictorError
from tailorkit.core.lazy import torch_threads
from tailorkit.predictors.base import Predictor, predictors
from tailorkit.spaces.nb201 import live_op_counts

log = logging.getLogger(__name__)

# HAT's predictor (Wang et al. 2020, latency_predictor.py): feature divisors and latency norms per device kind.
HAT_FEATURE_NORM = (640.0, 6.0, 2048.0, 6.0, 640.0, 6.0, 2048.0, 6.0, 6.0, 2.0)
HAT_LATENCY_NORM = {"raspberrypi": 5000.0, "xeon": 300.0, "titanxp": 200.0}

# Encoding-owned features an additive model can add (linearly) to its counts, by the name saved in its params
EXTRA_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"nb201-live": live_op_counts}


class _TargetScaler:
    """log (optional) then standardise; the inverse maps predictions back to ms."""

    def __init__(self, log_target: bool) -> None:
        self.log_target = log_target

    def fit(self, y: np.ndarray) -> np.ndarray:
        t = np.log(y) if self.log_target else y
        self.mean, self.std = float(t.mean()), float(t.std() or 1.0)
        return (t - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        t = z * self.std + self.mean
        return np.exp(t) if self.log_target else t


@predictors.register("gbm")
class GBMPredictor(Predictor):
    """Gradient-boosted regression trees on the encoding (LightGBM)."""

    kind = "gbm"

    # 400 trees at 0.1 match 800 at 0.05 within a point of ±10 % accuracy on NB201 and predict twice as fast
    def __init__(self, *, n_estimators: int = 400, learning_rate: float = 0.1, num_leaves: int = 31,
                 min_child_samples: int = 5, subsample: float = 1.0, colsample: float = 1.0, log_target: bool = True,
                 seed: int = 0, space: str | None = None, encoding: str | None = None,
                 device: str | None = None) -> None:
        super().__init__(space=space, encoding=encoding, device=device)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample = colsample
        self.log_target = log_target
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                "subsample": self.subsample, "colsample": self.colsample, "log_target": self.log_target,
                "seed": self.seed}

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        import lightgbm as lgb  # a core dependency, imported here to keep `import tailorkit` light
        X = self._check_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        scaler = _TargetScaler(self.log_target)
        z = scaler.fit(y)
        params = {"objective": "regression", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                  "min_data_in_leaf": self.min_child_samples, "bagging_fraction": self.subsample,
                  "bagging_freq": 1 if self.subsample < 1 else 0, "feature_fraction": self.colsample,
                  "seed": self.seed, "deterministic": True, "num_threads": 1, "verbose": -1,
                  "min_data_in_bin": 1}
        self.booster_ = lgb.train(params, lgb.Dataset(X, z, params={"verbose": -1}), self.n_estimators)
        self.target_ = (scaler.mean, scaler.std)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = self._check_X(X)
        scaler = _TargetScaler(self.log_target)
        scaler.mean, scaler.std = self.target_
        # every core: a search predicts whole populations at once (0 = OpenMP's default, all cores)
        return scaler.inverse(self.booster_.predict(X, num_threads=0 if X.shape[0] >= 10_000 else 1))

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        return {"target_": list(self.target_)}, {}, {"booster.txt": self.booster_.model_to_string()}

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        import lightgbm as lgb  # a core dependency, imported here to keep `import tailorkit` light
        self.target_ = tuple(float(v) for v in scalars["target_"])
        self.booster_ = lgb.Booster(model_str=blobs["booster.txt"])


@predictors.register("mlp")
class MLPPredictor(Predictor):
    """A ReLU MLP. Features are standardised (or divided by fixed ``feature_norm``, HAT's way); the target is
    log-standardised (or divided by ``latency_norm``). Trained with Adam on MSE, keeping the weights that did
    best on a held-out tenth of the training rows; ``ensemble`` independently seeded nets are averaged."""

    kind = "mlp"

    def __init__(self, *, hidden: Sequence[int] = (256, 256, 256), lr: float = 1e-3, steps: int = 5000,
                 batch_size: int = 128, weight_decay: float = 0.0, ensemble: int = 1, early_stopping: bool = True,
                 feature_norm: Sequence[float] | None = None, latency_norm: float | None = None, seed: int = 0,
                 space: str | None = None, encoding: str | None = None, device: str | None = None) -> None:
        super().__init__(space=space, encoding=encoding, device=device)
        self.hidden = [int(h) for h in hidden]
        self.lr = lr
        self.steps = steps
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.ensemble = ensemble
        self.early_stopping = early_stopping
        self.feature_norm = list(feature_norm) if feature_norm is not None else None
        self.latency_norm = latency_norm
        self.seed = seed

    @classmethod
    def hat_preset(cls, latency_norm: float, **kwargs: Any) -> MLPPredictor:
        """HAT's own predictor and training recipe: 10→400, 3 × 400→400, →1; fixed feature divisors and
        latency norm; Adam lr 1e-5, 5000 steps, batch 128, MSE, no early stopping."""
        recipe: dict[str, Any] = {"hidden": (400, 400, 400, 400), "lr": 1e-5, "steps": 5000, "batch_size": 128,
                                  "early_stopping": False, "feature_norm": HAT_FEATURE_NORM}
        return cls(latency_norm=latency_norm, **{**recipe, **kwargs})

    def get_params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "lr": self.lr, "steps": self.steps, "batch_size": self.batch_size,
                "weight_decay": self.weight_decay, "ensemble": self.ensemble, "early_stopping": self.early_stopping,
                "feature_norm": self.feature_norm, "latency_norm": self.latency_norm, "seed": self.seed}

    # --------------------------------------------------------------------------------------- scaling

    def _scale_X(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.x_shift_) / self.x_scale_).astype(np.float32)

    def _to_z(self, y: np.ndarray) -> np.ndarray:
        return y / self.latency_norm if self.latency_norm else (np.log(y) - self.y_shift_) / self.y_scale_

    def _from_z(self, z: np.ndarray) -> np.ndarray:
        return z * self.latency_norm if self.latency_norm else np.exp(z * self.y_scale_ + self.y_shift_)

    # ------------------------------------------------------------------------------------------- fit

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        import torch

        X = self._check_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        if self.feature_norm is not None:
            if len(self.feature_norm) != X.shape[1]:
                raise PredictorError(f"mlp: feature_norm has {len(self.feature_norm)} values for {X.shape[1]} features")
            self.x_shift_, self.x_scale_ = np.zeros(X.shape[1]), np.asarray(self.feature_norm, dtype=np.float64)
        else:
            self.x_shift_, self.x_scale_ = _standard_scale(X)
        logy = np.log(y)
        self.y_shift_, self.y_scale_ = float(logy.mean()), float(logy.std() or 1.0)
        Xs, z = self._scale_X(X), self._to_z(y).astype(np.float32)
        rng = np.random.default_rng(self.seed)
        self.layers_ = []
        with torch_threads(1):
            for member in range(self.ensemble):
                order = rng.permutation(len(z))
                n_val = max(1, len(z) // 10) if self.early_stopping and len(z) >= 20 else 0
                val, train = order[:n_val], order[n_val:]
                torch.manual_seed(self.seed * 1000 + member)
                self.layers_.append(_train_mlp(Xs[train], z[train], Xs[val], z[val], self.hidden, self.lr,
                                               self.steps, self.batch_size, self.weight_decay, rng))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        Xs = self._scale_X(self._check_X(X))
        z = np.mean([_forward(layers, Xs) for layers in self.layers_], axis=0)
        return self._from_z(z.astype(np.float64))

    # ----------------------------------------------------------------------------------------- state

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        arrays = {"x_shift": self.x_shift_, "x_scale": self.x_scale_}
        for m, layers in enumerate(self.layers_):
            for i, (w, b) in enumerate(layers):
                arrays[f"m{m}_w{i}"], arrays[f"m{m}_b{i}"] = w, b
        return {"y_shift_": self.y_shift_, "y_scale_": self.y_scale_, "members": len(self.layers_),
                "depth": len(self.layers_[0])}, arrays, {}

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        self.x_shift_, self.x_scale_ = arrays["x_shift"], arrays["x_scale"]
        self.y_shift_, self.y_scale_ = float(scalars["y_shift_"]), float(scalars["y_scale_"])
        self.layers_ = [[(arrays[f"m{m}_w{i}"], arrays[f"m{m}_b{i}"]) for i in range(int(scalars["depth"]))]
                        for m in range(int(scalars["members"]))]


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray) -> np.ndarray:
    h = X
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            np.maximum(h, 0, out=h)
    return h[:, 0]


def _train_mlp(X: np.ndarray, z: np.ndarray, Xv: np.ndarray, zv: np.ndarray, hidden: Sequence[int], lr: float,
               steps: int, batch: int, weight_decay: float, rng: np.random.Generator
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch
    from torch import nn

    sizes = [X.shape[1], *hidden, 1]
    modules: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        modules.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            modules.append(nn.ReLU())
    net = nn.Sequential(*modules)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    Xt, zt = torch.from_numpy(X), torch.from_numpy(z)
    Xvt, zvt = torch.from_numpy(Xv), torch.from_numpy(zv)
    best, best_loss = None, float("inf")
    check_every = max(1, steps // 50)
    for step in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(z), size=min(batch, len(z))))
        loss = torch.mean((net(Xt[idx])[:, 0] - zt[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if len(zv) and ((step + 1) % check_every == 0 or step == steps - 1):
            with torch.no_grad():
                val_loss = float(torch.mean((net(Xvt)[:, 0] - zvt) ** 2))
            if val_loss < best_loss:
                best_loss, best = val_loss, [p.detach().clone() for p in net.parameters()]
    if best is not None:
        with torch.no_grad():
            for p, saved in zip(net.parameters(), best, strict=True):
                p.copy_(saved)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    return [(lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for lin in linears]


def _standard_scale(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (1 for constant columns, which then stay 0)."""
    std = F.std(axis=0)
    return F.mean(axis=0), np.where(std > 0, std, 1.0)


def _intercept_penalty(k: int) -> np.ndarray:
    """Ridge penalty over ``k`` coefficients whose last one, the intercept, is not shrunk."""
    penalty = np.eye(k)
    penalty[-1, -1] = 0.0
    return penalty


def _holdout_split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random ``share`` of ``n`` rows (at least one) held out, and the rest."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(n * share))
    return order[:n_val], order[n_val:]


class _LinearModel(Predictor):
    """Latency in ms, linear in standardised design features with the intercept last, clipped positive."""

    def _design(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _standardised(self, F: np.ndarray) -> np.ndarray:
        """Fits the scaling on ``F``; returns the scaled design with an intercept column."""
        self.shift_, self.scale_ = _standard_scale(F)
        return np.c_[(F - self.shift_) / self.scale_, np.ones(len(F))]

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        F = self._design(self._check_X(X))
        return np.maximum(((F - self.shift_) / self.scale_) @ self.coef_[:-1] + self.coef_[-1], 1e-6)

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        return {}, {"shift": self.shift_, "scale": self.scale_, "coef": self.coef_}, {}

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        self.shift_, self.scale_, self.coef_ = arrays["shift"], arrays["scale"], arrays["coef"]


@predictors.register("additive")
class AdditivePredictor(_LinearModel):
    """Latency as a linear function of how often each choice occurs (and, with ``degree=2``, of their pairwise
    products: ops that share a cell interact), optionally plus the one-hot encoding itself. NAS-Bench-201
    latencies are almost additive in the cell's ops, which trees approximate poorly from 900 samples.

    The loss is a smoothed ±``band`` hit rate in log space (each sample counts 1 when the prediction lies
    within the band, sigmoid-smoothed, annealed from wide to sharp down to ``tau``), plus ``centre`` times the
    same for the inner half band, started from the ridge solution: a bounded loss, so the outliers of noisy
    devices (interrupted runs, integer-ms clocks) cannot drag the fit. Where latencies come in tight clusters
    with slow runs above (NB201: archs with equal op counts), the ±10 % hits lie on the clusters' edges, which
    a sharper end finds: ending at 0.005 instead of 0.01 gains on NB201's noisy devices (gold_6240 75.2 → 77.0 %,
    pixel2 55.0 → 56.3 %, pixel3 75.9 → 76.8 % ±10 %). A sharp band alone leaves predictions anywhere inside
    it (NB201 ±5 % accuracy 77 → 69 %); the inner band keeps them near the measurements (77 %). With many
    parameters per row (FBNet's per-layer one-hots) a sharp end overfits (94.7 → 94.0 % ±10 %), so ``tau``
    defaults to 0.01. ``extra`` adds encoding-owned features linearly (:data:`EXTRA_FEATURES`). Prediction is
    one matrix product: millions of archs per second."""

    kind = "additive"

    # the smoothing temperatures (log-latency units) the fit anneals through, down to ``tau``
    TAU_STEPS = (0.05, 0.02, 0.01, 0.005, 0.0025, 0.001)

    def __init__(self, *, group: int | None = None, degree: int = 2, onehot: bool = False, band: float = 0.1,
                 ridge: float = 1e-4, tau: float = 0.01, centre: float = 0.03, extra: str | None = None,
                 space: str | None = None, encoding: str | None = None, device: str | None = None) -> None:
        super().__init__(space=space, encoding=encoding, device=device)
        if not 0 < tau <= self.TAU_STEPS[0]:
            raise PredictorError(f"additive: tau must lie in (0, {self.TAU_STEPS[0]}], got {tau}")
        if centre < 0:
            raise PredictorError(f"additive: centre must be ≥ 0, got {centre}")
        if extra is not None and extra not in EXTRA_FEATURES:
            raise PredictorError(f"additive: unknown extra features {extra!r}; known: {', '.join(EXTRA_FEATURES)}")
        self.group = group
        self.degree = degree
        self.onehot = onehot
        self.band = band
        self.ridge = ridge
        self.tau = tau
        self.centre = centre
        self.extra = extra

    def get_params(self) -> dict[str, Any]:
        return {"group": self.group, "degree": self.degree, "onehot": self.onehot, "band": self.band,
                "ridge": self.ridge, "tau": self.tau, "centre": self.centre, "extra": self.extra}

    def _design(self, X: np.ndarray) -> np.ndarray:
        base = X if self.group is None else X.reshape(X.shape[0], -1, self.group).sum(axis=1)
        parts = [base]
        if self.degree >= 2:
            i, j = np.triu_indices(base.shape[1])
            parts.append(base[:, i] * base[:, j])
        if self.onehot and self.group is not None:
            parts.append(X)
        if self.extra is not None:
            try:
                parts.append(EXTRA_FEATURES[self.extra](X))
            except ConfigError as exc:
                raise PredictorError(f"additive ({self.extra} features): {exc}") from None
        return np.concatenate(parts, axis=1)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        from scipy.optimize import minimize

        X = self._check_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        Z = self._standardised(self._design(X))
        n, k = Z.shape
        penalty = _intercept_penalty(k)
        var = float(np.var(y)) or 1.0
        beta = np.linalg.solve(Z.T @ Z + self.ridge * n * var * penalty, Z.T @ y)
        log_y = np.log(y)
        # the band and its inner half: a hit within ±band/2 scores 1 + centre, so that among fits with as many
        # ±band hits the one nearer the measurements wins (a sharp band loss alone leaves them anywhere inside)
        bands = [(np.log(1 / (1 + w)), np.log(1 / (1 - w)), weight)
                 for w, weight in ((self.band, 1.0), (self.band / 2, self.centre))]

        def loss(b: np.ndarray, tau: float) -> tuple[float, np.ndarray]:
            p = np.maximum(Z @ b, 1e-9)
            r = log_y - np.log(p)
            hits, dh_dr = 0.0, 0.0
            for low, high, weight in bands:
                a = _sigmoid((r - low) / tau)
                c = _sigmoid((high - r) / tau)
                hits = hits + weight * a * c
                dh_dr = dh_dr + weight * (a * (1 - a) * c - a * c * (1 - c)) / tau
            value = -np.mean(hits) + self.ridge * (b @ penalty @ b) / var
            grad = (Z * (dh_dr / p)[:, None]).mean(axis=0) + 2 * self.ridge * (penalty @ b) / var
            return float(value), grad

        for tau in (*(t for t in self.TAU_STEPS if t > self.tau), self.tau):
            beta = minimize(loss, beta, args=(tau,), jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
        self.coef_ = beta
        self.n_features_in_ = X.shape[1]
        return self


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def model_candidates(encoding: str | None, *, seed: int = 0, space: str | None = None,
                     device: str | None = None) -> list[Predictor]:
    """The model-level predictors worth trying for an encoding, for :func:`fit_best` to choose among.

    NB201: the additive model on op counts and their products (sharp tolerance band, see
    :class:`AdditivePredictor`), the same plus the counts of ops on live edges (devices whose runtime drops dead
    edges: raspi4 71 → 75 %, pixel3 71 → 77 % ±10 % in benchmarks/predictors.py; elsewhere it costs up to 3
    points, so the holdout decides), and gradient boosting. FBNet: the additive model on the per-layer one-hot
    encoding, the same on op counts alone (on integer-millisecond phones the simpler model generalises best:
    essential_ph_1 50 → 55 % ±10 %), and gradient boosting. Any other encoding: a linear additive model and
    gradient boosting."""
    meta = {"space": space, "encoding": encoding, "device": device}
    if encoding == "nb201":
        additive = [AdditivePredictor(group=5, degree=2, tau=0.005, **meta),
                    AdditivePredictor(group=5, degree=2, tau=0.005, extra="nb201-live", **meta)]
    elif encoding == "fbnet":
        additive = [AdditivePredictor(group=9, onehot=True, degree=1, **meta),
                    AdditivePredictor(group=9, onehot=False, degree=1, **meta)]
    else:
        additive = [AdditivePredictor(degree=1, **meta)]
    return [*additive, GBMPredictor(seed=seed, **meta)]


def fit_best(candidates: Sequence[Predictor], X: np.ndarray, y: np.ndarray, *, holdout: float = 0.2,
             seed: int = 0) -> Predictor:
    """Pick among ``candidates`` by ±10 % accuracy on a random ``holdout`` of the training rows, then refit the
    winner on all of them; the choice never sees the data it will be judged on."""
    if not candidates:
        raise PredictorError("fit_best needs at least one candidate")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    val, train = _holdout_split(len(y), holdout, seed)
    scores = []
    for candidate in candidates:
        pred = candidate.fit(X[train], y[train]).predict(X[val])
        scores.append(float(np.mean(np.abs(pred - y[val]) / y[val] <= 0.10)))
    best = candidates[int(np.argmax(scores))]
    log.info("fit_best: %s", ", ".join(f"{c.kind} {s:.3f}" for c, s in zip(candidates, scores, strict=True)))
    return best.fit(X, y)


@predictors.register("ridge")
class RidgePredictor(_LinearModel):
    """Standardised ridge regression in ms, the penalty chosen on a held-out share of the training rows and
    the model then refitted on all of them. ``features="hat"`` adds HAT's decoder totals
    (:func:`tailorkit.spaces.hat.latency_features`). A low-capacity model on purpose: on HAT's tables the
    residuals are measurement noise, which flexible models fit."""

    kind = "ridge"
    ALPHAS = tuple(float(a) for a in np.logspace(-6, 3, 19))

    def __init__(self, *, features: str = "raw", holdout: float = 0.125, seed: int = 0, space: str | None = None,
                 encoding: str | None = None, device: str | None = None) -> None:
        super().__init__(space=space, encoding=encoding, device=device)
        if features not in ("raw", "hat"):
            raise PredictorError(f"ridge: features must be raw or hat, got {features!r}")
        self.features = features
        self.holdout = holdout
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"features": self.features, "holdout": self.holdout, "seed": self.seed}

    def _design(self, X: np.ndarray) -> np.ndarray:
        if self.features == "hat":
            from tailorkit.spaces.hat import latency_features

            return latency_features(X)
        return X

    @staticmethod
    def _solve(Z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
        return np.linalg.solve(Z.T @ Z + alpha * _intercept_penalty(Z.shape[1]), Z.T @ y)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        X = self._check_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        Z = self._standardised(self._design(X))
        val, train = _holdout_split(len(y), self.holdout, self.seed)
        errors = [float(np.mean((Z[val] @ self._solve(Z[train], y[train], a) - y[val]) ** 2)) for a in self.ALPHAS]
        self.alpha_ = self.ALPHAS[int(np.argmin(errors))]
        self.coef_ = self._solve(Z, y, self.alpha_)
        self.n_features_in_ = X.shape[1]
        return self

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        _, arrays, blobs = super()._fitted_state()
        return {"alpha_": self.alpha_}, arrays, blobs

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        super()._restore(scalars, arrays, blobs)
        self.alpha_ = float(scalars["alpha_"])
