"""Latency predictors: lookup-table sum, model-level regressors, few-shot transfer; saved without pickle."""

from tailorkit.predictors.base import Predictor, load_predictor, predictors
from tailorkit.predictors.fewshot import FewShotPredictor
from tailorkit.predictors.lut import LutSumPredictor
from tailorkit.predictors.metrics import evaluate
from tailorkit.predictors.model import AdditivePredictor, GBMPredictor, MLPPredictor, RidgePredictor, fit_best

__all__ = ["AdditivePredictor", "FewShotPredictor", "GBMPredictor", "LutSumPredictor", "MLPPredictor", "Predictor",
           "RidgePredictor", "evaluate", "fit_best", "load_predictor", "predictors"]
