"""Few-shot transfer to an unseen device: hierarchical Bayesian linear regression (HBLR).

Latency is close to additive in an architecture's parts, so on every device ``y / mean(y) ≈ a + φ(x)·θ_d``
for a device-specific θ_d. Meta-training fits θ_d by ridge regression on each known device (over its
10–90 % latency range, as HELP filters its pools) and turns them into a Gaussian prior
θ ~ N(0, Σ), Σ = mean_d θ_d θ_dᵀ + τ² I (each θ_d rescaled to the mean norm, so no device dominates). On
the new device, K measured archs give the posterior mean

    θ̂ = Σ Pᵀ (P Σ Pᵀ + σ² I)⁻¹ y_c,      a = mean(y_rel − Φ θ̂)

with P and y_c the centred features and relative latencies of the K shots (the intercept gets a flat
prior), and latency(x) = mean(y_K) · (a + φ(x) θ̂). The prior says which directions of θ devices actually
vary in, so 5–20 shots pin down a 198-dimensional FBNet model. On HELP's protocol (10 reference archs,
meta-test devices titan_rtx_256, gold_6226, fpga, pixel2, raspi4, eyeriss) this reached mean Spearman
ρ 0.948 on NAS-Bench-201 against HELP's published 0.932, and 0.943 on FBNet's (fpga, raspi4, eyeriss)
against 0.910 (benchmarks/predictors.py reproduces both).

Raw latency (not log) is the right target: sums of parts are linear there. φ is the encoding itself, or
with ``group`` the one-hot blocks summed over positions (NB201: how often each op occurs in the cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from tailorkit.core.errors import PredictorError
from tailorkit.predictors.base import Predictor, predictors


@predictors.register("fewshot")
class FewShotPredictor(Predictor):
    kind = "fewshot"

    def __init__(self, *, group: int | None = None, tau: float = 0.01, noise: float = 3e-3, ridge: float = 1e-3,
                 trim: float = 0.1, space: str | None = None, encoding: str | None = None,
                 device: str | None = None) -> None:
        super().__init__(space=space, encoding=encoding, device=device)
        self.group = group
        self.tau = tau
        self.noise = noise
        self.ridge = ridge
        self.trim = trim

    def get_params(self) -> dict[str, Any]:
        return {"group": self.group, "tau": self.tau, "noise": self.noise, "ridge": self.ridge, "trim": self.trim}

    def _features(self, X: np.ndarray) -> np.ndarray:
        if self.group is None:
            return X
        if X.shape[1] % self.group:
            raise PredictorError(f"fewshot: encoding length {X.shape[1]} is not a multiple of group {self.group}")
        return X.reshape(X.shape[0], -1, self.group).sum(axis=1)

    def meta_fit(self, X: np.ndarray, latencies: Mapping[str, np.ndarray]) -> Self:
        """Learn the prior from known devices: ``latencies[device]`` holds that device's ms for the rows of X."""
        X = self._check_X(X, fitting=True)
        if len(latencies) < 2:
            raise PredictorError("fewshot: meta-training needs at least two devices")
        phi = self._features(X)
        thetas = []
        for device, y in latencies.items():
            y = self._check_y(y, X.shape[0])
            low, high = np.quantile(y, [self.trim, 1 - self.trim])
            keep = (y >= low) & (y <= high)
            if keep.sum() < 2:
                raise PredictorError(f"fewshot: device {device!r} has too few distinct latencies")
            thetas.append(_ridge(phi[keep], y[keep] / y[keep].mean(), self.ridge))
        T = np.array(thetas)
        norms = np.linalg.norm(T, axis=1, keepdims=True)
        T = T / np.where(norms > 0, norms, 1.0) * norms.mean()
        self.prior_cov_ = T.T @ T / len(T) + self.tau**2 * np.eye(T.shape[1])
        self.meta_devices_ = list(latencies)
        self.n_features_in_ = X.shape[1]
        for name in ("theta_", "intercept_", "scale_"):
            self.__dict__.pop(name, None)
        return self

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Adapt to a new device from its K measured archs."""
        if not hasattr(self, "prior_cov_"):
            raise PredictorError("fewshot: call meta_fit on known devices before fit on the new one")
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        if X.shape[0] < 2:
            raise PredictorError("fewshot: adapting needs at least two measured archs")
        phi = self._features(X)
        scale = y.mean()
        rel = y / scale
        P = phi - phi.mean(axis=0)
        yc = rel - rel.mean()
        S = self.prior_cov_
        gram = P @ S @ P.T + self.noise * np.eye(len(yc))
        self.theta_ = S @ P.T @ np.linalg.solve(gram, yc)
        self.intercept_ = float(np.mean(rel - phi @ self.theta_))
        self.scale_ = float(scale)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "theta_"):
            raise PredictorError("fewshot: not adapted to a device yet (fit it on the device's measurements)")
        X = self._check_X(X)
        rel = self.intercept_ + self._features(X) @ self.theta_
        return self.scale_ * np.maximum(rel, 1e-6)  # a linear model can dip below zero far from its shots

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        scalars: dict[str, Any] = {"meta_devices_": self.meta_devices_}
        arrays = {"prior_cov": self.prior_cov_}
        if hasattr(self, "theta_"):
            scalars.update(intercept_=self.intercept_, scale_=self.scale_)
            arrays["theta"] = self.theta_
        return scalars, arrays, {}

    def _restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        self.meta_devices_ = list(scalars["meta_devices_"])
        self.prior_cov_ = np.asarray(arrays["prior_cov"], dtype=np.float64)
        if "theta" in arrays:
            self.theta_ = np.asarray(arrays["theta"], dtype=np.float64)
            self.intercept_ = float(scalars["intercept_"])
            self.scale_ = float(scalars["scale_"])


def _ridge(X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients with an unpenalised intercept (centred least squares)."""
    Xc = X - X.mean(axis=0)
    yc = y - y.mean()
    return np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ yc)
