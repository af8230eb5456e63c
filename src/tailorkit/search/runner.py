"""The search loop: ask the strategy, evaluate whole batches, tell, keep the history, checkpoint, stop at the
budget.

A checkpoint is one ``.npz`` file (history, strategy arrays, and a JSON header stored as bytes — never pickles)
replaced atomically, so a search killed at any moment resumes from its last complete batch; because the
strategy's generator state travels with it, a resumed search makes exactly the choices the uninterrupted one
would have. A checkpoint written by a different search (space, strategy, reward, predictor, seed) is refused.
A larger budget than the checkpointed run's continues that search (the last, shortened batch of the first run
makes it differ from one run with the larger budget from the start).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tailorkit.core.errors import CheckpointError, ConfigError
from tailorkit.search.strategies import Evaluations, Strategy

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "tailorkit.search-checkpoint"
CHECKPOINT_VERSION = 1


class Executor(Protocol):
    """Where a batch is evaluated: in this process now; a device farm plugs in here (e.g. Ray)."""

    def evaluate(self, evaluate: Callable[[np.ndarray], Evaluations], genes: np.ndarray) -> Evaluations: ...


class LocalExecutor:
    def evaluate(self, evaluate: Callable[[np.ndarray], Evaluations], genes: np.ndarray) -> Evaluations:
        return evaluate(genes)


@dataclass(frozen=True)
class SearchProgress:
    evaluated: int
    budget: int
    best_reward: float
    seconds: float


@dataclass
class SearchHistory:
    """Every evaluated candidate, in order."""

    genes: np.ndarray
    latency_ms: np.ndarray
    accuracy: np.ndarray | None
    reward: np.ndarray

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def best_index(self) -> int:
        finite = np.where(np.isfinite(self.reward), self.reward, -np.inf)
        return int(np.argmax(finite))

    def best_so_far(self) -> np.ndarray:
        return np.maximum.accumulate(np.where(np.isfinite(self.reward), self.reward, -np.inf))

    def pareto_front(self) -> np.ndarray:
        """Rows on the latency/accuracy Pareto front (distinct archs; by latency only, the fastest)."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        if self.accuracy is None:
            return np.array([int(np.argmin(self.latency_ms))])
        order = np.lexsort((-self.accuracy, self.latency_ms))
        best = -np.inf
        front = []
        for i in order:  # sweep by rising latency: keep a row if it beats every faster one's accuracy
            if self.accuracy[i] > best:
                front.append(int(i))
                best = self.accuracy[i]
        return np.array(front, dtype=np.int64)


class SearchRunner:
    def __init__(self, evaluate: Callable[[np.ndarray], Evaluations], strategy: Strategy, budget: int, *,
                 fingerprint: Mapping[str, Any] | None = None, checkpoint: str | Path | None = None,
                 checkpoint_every_s: float = 5.0, executor: Executor | None = None,
                 callbacks: Sequence[Callable[[SearchProgress], None]] = ()) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(f"the search budget must be a positive number of evaluations, got {budget!r}")
        self.evaluate, self.strategy, self.budget = evaluate, strategy, budget
        self.fingerprint = json.loads(json.dumps(dict(fingerprint or {}), default=str))
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every_s = checkpoint_every_s
        self.executor = executor or LocalExecutor()
        self.callbacks = list(callbacks)
        g = strategy.genome.n_genes
        self._genes: list[np.ndarray] = []
        self._evals: list[Evaluations] = []
        self.evaluated = 0
        self.seconds = 0.0
        self.resumed_from = 0
        self._empty = np.zeros((0, g), dtype=np.int64)

    # ------------------------------------------------------------------------------------------ loop

    def run(self) -> SearchHistory:
        if self.checkpoint is not None and self.checkpoint.exists():
            self._load()
            if self.evaluated > self.budget:
                raise CheckpointError(f"search checkpoint {str(self.checkpoint)!r} already holds {self.evaluated} "
                                      f"evaluations, more than the budget of {self.budget}")
            self.resumed_from = self.evaluated
            log.info("resumed a search at %d of %d evaluations", self.evaluated, self.budget)
        start, last_save = time.perf_counter() - self.seconds, time.perf_counter()
        best = float(self.history().best_so_far()[-1]) if self.evaluated else -np.inf
        while self.evaluated < self.budget:
            genes = self.strategy.ask(min(self.strategy.batch_size, self.budget - self.evaluated))
            if genes.shape[0] == 0:
                raise RuntimeError(f"strategy {self.strategy.name} proposed no candidates")  # a bug, not input
            evals = self.executor.evaluate(self.evaluate, genes)
            self.strategy.tell(genes, evals)
            self._genes.append(genes)
            self._evals.append(evals)
            self.evaluated += genes.shape[0]
            finite = evals.reward[np.isfinite(evals.reward)]
            if finite.size:
                best = max(best, float(finite.max()))
            self.seconds = time.perf_counter() - start
            if self.checkpoint is not None and (time.perf_counter() - last_save >= self.checkpoint_every_s
                                                or self.evaluated >= self.budget):
                self._save()
                last_save = time.perf_counter()
            for cb in self.callbacks:
                cb(SearchProgress(self.evaluated, self.budget, best, self.seconds))
        return self.history()

    def history(self) -> SearchHistory:
        if not self._genes:
            return SearchHistory(self._empty, np.zeros(0), None, np.zeros(0))
        if len(self._genes) > 1:  # keep one array per field, so long searches do not collect thousands
            self._genes = [np.concatenate(self._genes)]
            self._evals = [_concat(self._evals)]
        e = self._evals[0]
        return SearchHistory(self._genes[0], e.latency_ms, e.accuracy, e.reward)

    # ------------------------------------------------------------------------------------ checkpoints

    def _save(self) -> None:
        assert self.checkpoint is not None
        hist = self.history()
        scalars, arrays = self.strategy.state()
        header = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "fingerprint": self.fingerprint,
                  "evaluated": self.evaluated, "seconds": self.seconds, "strategy": scalars,
                  "strategy_arrays": sorted(arrays), "has_accuracy": hist.accuracy is not None}
        payload = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                   "h.genes": hist.genes.astype(np.int16), "h.latency": hist.latency_ms, "h.reward": hist.reward,
                   "h.objectives": self._evals[0].objectives if self._evals else np.zeros((0, 1))}
        if hist.accuracy is not None:
            payload["h.accuracy"] = hist.accuracy
        payload.update({f"s.{k}": v for k, v in arrays.items()})
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint)

    def _load(self) -> None:
        assert self.checkpoint is not None
        path = self.checkpoint
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: np.array(npz[k]) for k in npz.files}
            header = json.loads(bytes(data["header"]).decode())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"search checkpoint {str(path)!r} is corrupt or not a checkpoint ({exc}); "
                                  "delete it to start over") from None
        if header.get("format") != CHECKPOINT_FORMAT or header.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{str(path)!r} is not a tailorkit search checkpoint of version "
                                  f"{CHECKPOINT_VERSION}")
        theirs = header.get("fingerprint", {})
        diff = sorted(k for k in set(theirs) | set(self.fingerprint) if theirs.get(k) != self.fingerprint.get(k))
        if diff:
            raise CheckpointError(f"search checkpoint {str(path)!r} was written by a different search "
                                  f"({', '.join(diff)} differ); use another checkpoint path or the same settings")
        try:
            self.strategy.load_state(header["strategy"], {k: data[f"s.{k}"] for k in header["strategy_arrays"]})
            genes = data["h.genes"].astype(np.int64)
            evals = Evaluations(data["h.latency"], data["h.accuracy"] if header["has_accuracy"] else None,
                                data["h.reward"], data["h.objectives"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"search checkpoint {str(path)!r} is incomplete ({exc}); delete it to start "
                                  "over") from None
        if genes.shape != (len(evals), self.strategy.genome.n_genes) or int(header["evaluated"]) != len(evals):
            raise CheckpointError(f"search checkpoint {str(path)!r} is inconsistent; delete it to start over")
        self._genes, self._evals = ([genes], [evals]) if len(evals) else ([], [])
        self.evaluated = len(evals)
        self.seconds = float(header.get("seconds", 0.0))


def _concat(evals: Sequence[Evaluations]) -> Evaluations:
    acc = None if evals[0].accuracy is None else np.concatenate([e.accuracy for e in evals])  # type: ignore[misc]
    return Evaluations(np.concatenate([e.latency_ms for e in evals]), acc,
                       np.concatenate([e.reward for e in evals]), np.concatenate([e.objectives for e in evals]))
