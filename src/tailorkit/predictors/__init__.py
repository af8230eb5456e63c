"""Latency predictors: lookup-table sum, kernel-level, model-level, few-shot transfer; saved without pickle."""

from tailorkit.predictors.base import Predictor, load_predictor, predictors
from tailorkit.predictors.fewshot import FewShotPredictor
from tailorkit.predictors.kernel import KernelPredictor
from tailorkit.predictors.lut import LutSumPredictor
from tailorkit.predictors.metrics import evaluate
from tailorkit.predictors.model import (
    AdditivePredictor,
    GBMPredictor,
    MLPPredictor,
    RidgePredictor,
    fit_best,
    model_candidates,
)

__all__ = ["AdditivePredictor", "FewShotPredictor", "GBMPredictor", "KernelPredictor", "LutSumPredictor",
           "MLPPredictor", "Predictor", "RidgePredictor", "evaluate", "fit_best", "load_predictor",
           "model_candidates", "predictors"]
