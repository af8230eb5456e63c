"""Rewards: how a search ranks (accuracy, latency) pairs, vectorised over a population.

* **MnasNet soft** — ``ACC · (LAT / T)^w`` with ``w = α`` if ``LAT ≤ T`` else ``β``, α = β = −0.07 (Tan et al.,
  2019: a model twice as slow must be ~5 % more accurate to score the same).
* **MnasNet hard** — α = 0, β = −1: no bonus for being faster than the target, a steep penalty past it.
* **Latency cap** (OFA / HAT / SPOS) — accuracy where ``LAT ≤ T``, and ``-inf`` past it: a constraint, which
  evolution also applies as a filter when it breeds candidates.

Without an accuracy model (NB201, FBNet and HAT have public latencies but no accuracies here) the MnasNet rewards
use ACC = 1, so they rank by latency alone; the cap reward, which ranks feasible archs only by accuracy, then has
nothing to rank and refuses.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.core.registry import Registry

rewards: Registry[Any] = Registry("reward")


class Reward(abc.ABC):
    name: ClassVar[str]
    needs_accuracy: ClassVar[bool] = False

    def __init__(self, target_ms: float) -> None:
        if not (isinstance(target_ms, (int, float)) and math.isfinite(target_ms) and target_ms > 0):
            raise ConfigError(f"target latency must be a positive number of ms, got {target_ms!r}")
        self.target_ms = float(target_ms)

    @abc.abstractmethod
    def __call__(self, accuracy: np.ndarray | None, latency: np.ndarray) -> np.ndarray: ...

    def feasible(self, latency: np.ndarray) -> np.ndarray:
        """Which latencies meet the target (the constraint filter of evolution uses it)."""
        return np.asarray(latency) <= self.target_ms

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "target_ms": self.target_ms}


class MnasNetReward(Reward):
    def __init__(self, target_ms: float, alpha: float = -0.07, beta: float = -0.07) -> None:
        super().__init__(target_ms)
        self.alpha, self.beta = float(alpha), float(beta)

    def __call__(self, accuracy: np.ndarray | None, latency: np.ndarray) -> np.ndarray:
        latency = np.asarray(latency, dtype=np.float64)
        ratio = latency / self.target_ms
        w = np.where(ratio <= 1.0, self.alpha, self.beta)
        acc = 1.0 if accuracy is None else np.asarray(accuracy, dtype=np.float64)
        return acc * np.power(ratio, w)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "alpha": self.alpha, "beta": self.beta}


@rewards.register("mnasnet-soft")
class MnasNetSoftReward(MnasNetReward):
    name = "mnasnet-soft"

    def __init__(self, target_ms: float) -> None:
        super().__init__(target_ms, -0.07, -0.07)


@rewards.register("mnasnet-hard")
class MnasNetHardReward(MnasNetReward):
    name = "mnasnet-hard"

    def __init__(self, target_ms: float) -> None:
        super().__init__(target_ms, 0.0, -1.0)


@rewards.register("cap")
class LatencyCapReward(Reward):
    name = "cap"
    needs_accuracy = True

    def __call__(self, accuracy: np.ndarray | None, latency: np.ndarray) -> np.ndarray:
        if accuracy is None:
            raise ConfigError("the cap reward ranks archs under the cap by accuracy, and there is no accuracy "
                              "model; use --reward mnasnet-soft or mnasnet-hard for a latency-only search")
        return np.where(self.feasible(latency), np.asarray(accuracy, dtype=np.float64), -np.inf)


def make_reward(name: str, target_ms: float) -> Reward:
    if name == "pareto":  # not a scalar reward: NSGA-II ranks by the objectives and reports soft rewards
        name = "mnasnet-soft"
    return rewards.get(name)(target_ms)


REWARD_NAMES = (*sorted(rewards), "pareto")
