"""Accuracy of latency predictions, as the latency-predictor papers report it."""

from __future__ import annotations

import numpy as np
from scipy import stats

from tailorkit.core.errors import PredictorError


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE (ms), MAPE (%), share within ±5 % / ±10 % of the truth (%), Spearman ρ and Kendall τ."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise PredictorError(f"cannot compare {y_true.size} true and {y_pred.size} predicted latencies")
    if (y_true <= 0).any() or not np.isfinite(y_true).all():
        raise PredictorError("true latencies must be positive and finite")
    rel = np.abs(y_pred - y_true) / y_true
    constant = np.ptp(y_true) == 0 or np.ptp(y_pred) == 0
    return {
        "n": float(y_true.size),
        "rmse": float(np.sqrt(np.mean((y_pred - y_true) ** 2))),
        "mape": float(rel.mean() * 100),
        "acc5": float((rel <= 0.05).mean() * 100),
        "acc10": float((rel <= 0.10).mean() * 100),
        "spearman": float("nan") if constant else float(stats.spearmanr(y_true, y_pred).statistic),
        "kendall": float("nan") if constant else float(stats.kendalltau(y_true, y_pred).statistic),
    }
