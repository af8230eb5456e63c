"""Latency predictors: lookup-table sum, model-level regressors, few-shot transfer; saved without pickle."""

from tailorkit.predictors.base import Predictor, load_predictor, predictors
from tailorkit.predictors.lut import LutSumPredictor
from tailorkit.predictors.metrics import evaluate

__all__ = ["LutSumPredictor", "Predictor", "evaluate", "load_predictor", "predictors"]
