"""An accuracy predictor for fast search (OFA's recipe): an MLP on the one-hot arch encoding, trained on the
accuracies the supernet gives sampled subnets, so that an evolutionary search scores thousands of candidates
per second instead of recalibrating and evaluating each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from tailorkit.core.errors import PredictorError
from tailorkit.predictors.model import MLPPredictor
from tailorkit.search.supernet import DigitsSplits, evaluate_arch
from tailorkit.spaces.ofa_mbv3 import OFAArch, OFAMobileNetV3Space
from tailorkit.spaces.ofa_supernet import OFASupernet

log = logging.getLogger(__name__)
ENCODING = "ofa-mbv3-onehot"


def supernet_accuracies(net: OFASupernet, data: DigitsSplits, n: int, *, seed: int = 0, split: str = "val",
                        progress: Callable[[int, int], None] | None = None) -> tuple[list[OFAArch], np.ndarray]:
    """``n`` random subnets (plus the largest and smallest, so the range is covered) and their accuracy run
    by the supernet on ``split``."""
    if n < 1:
        raise PredictorError("accuracy dataset: n must be >= 1")
    rng = np.random.default_rng(seed)
    space = net.space
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]
    acc = np.empty(len(archs))
    for i, arch in enumerate(archs):
        acc[i] = evaluate_arch(net, data, arch, split)
        if progress:
            progress(i + 1, len(archs))
    return archs, acc


def fit_accuracy_predictor(archs: list[OFAArch], accuracy: np.ndarray, *, seed: int = 0,
                           steps: int = 3000) -> MLPPredictor:
    """OFA's accuracy predictor shape (3 hidden layers of 400) on :meth:`OFAMobileNetV3Space.one_hot`, with
    the MLP's standardised log target (accuracies of subnets span a few points; unscaled, their squared errors
    are too small to train on). ``predict`` takes ``OFAMobileNetV3Space.one_hot(space.to_array(archs))``."""
    y = np.asarray(accuracy, dtype=np.float64)
    if len(archs) != y.size or y.size < 10:
        raise PredictorError("accuracy predictor: needs at least 10 archs with one accuracy each")
    X = OFAMobileNetV3Space.one_hot(OFAMobileNetV3Space.to_array(archs))
    predictor = MLPPredictor(hidden=(400, 400, 400), steps=steps, seed=seed,
                             space="ofa-mbv3", encoding=ENCODING, device="digits-accuracy")
    return predictor.fit(X, np.maximum(y, 1e-3))  # a 0 % subnet still needs a positive target
