"""Search strategies behind one ask/tell seam, so the runner owns the loop, the budget, checkpoints and where
evaluations run.

``ask(n)`` returns up to ``n`` candidates as (n, G) choice-index arrays (see :class:`Genome`); ``tell(genes,
evaluations)`` hands back their scores. Every strategy keeps its whole state in numbers — arrays plus a JSON-able
dict, the numpy generator's state included — so a checkpoint resumes a search exactly where a killed one
stopped, and the same seed gives the same search.

* ``random`` — uniform samples (with the constraint filter, when the reward has a hard cap).
* ``evolution`` — OFA's evolutionary search: keep the best ``parents``, breed ``mutations`` mutants and the rest
  as crossovers of random parents, children that break a hard latency cap are redrawn (the constraint filter).
  Presets: ``ofa`` (population 100, parent ratio 0.25, mutation ratio 0.5 → 50 mutants + 50 crossovers,
  mutation prob 0.1), ``hat`` (population 125, 25 parents, 50 mutations, 50 crossovers, prob 0.3), ``spos``
  (population 50, top 10, 25 mutations, 25 crossovers, prob 0.1).
* ``nsga2`` — NSGA-II over the objectives (latency and −accuracy):
  non-dominated sorting with crowding distance, binary tournaments, crossover + mutation.
* ``rl`` — MnasNet's controller: an LSTM samples one decision per gene (a softmax over that gene's allowed
  choices, fed the previous decision), trained with REINFORCE against an exponential moving-average baseline.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.core.registry import Registry
from tailorkit.search.genome import Genome

strategies: Registry[Any] = Registry("strategy")

Constraint = Callable[[np.ndarray], np.ndarray]  # (N, G) choice indices → (N,) bool: meets the hard cap


@dataclass(frozen=True)
class Evaluations:
    """Scores of a batch of candidates, row for row. ``objectives`` are minimised (latency, −accuracy, …)."""

    latency_ms: np.ndarray
    accuracy: np.ndarray | None
    reward: np.ndarray
    objectives: np.ndarray

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def take(self, rows: np.ndarray) -> Evaluations:
        return Evaluations(self.latency_ms[rows], None if self.accuracy is None else self.accuracy[rows],
                           self.reward[rows], self.objectives[rows])


class Strategy(abc.ABC):
    name: ClassVar[str]
    uses_objectives: ClassVar[bool] = False

    def __init__(self, genome: Genome, *, seed: int = 0, constraint: Constraint | None = None) -> None:
        self.genome = genome
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.constraint = constraint

    @property
    @abc.abstractmethod
    def batch_size(self) -> int:
        """How many candidates the strategy wants at once (a generation, a policy update)."""

    @abc.abstractmethod
    def ask(self, n: int) -> np.ndarray: ...

    @abc.abstractmethod
    def tell(self, genes: np.ndarray, evaluations: Evaluations) -> None: ...

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    # ------------------------------------------------------------------------------------- state

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"rng": self.rng.bit_generator.state}, {}

    def load_state(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.rng.bit_generator.state = scalars["rng"]

    # ----------------------------------------------------------------------------------- helpers

    def _feasible_fill(self, make: Callable[[np.ndarray], np.ndarray], n: int, kinds: np.ndarray | None = None,
                       attempts: int = 50) -> np.ndarray:
        """``n`` rows, row ``i`` drawn by ``make(positions)``, with rows that fail the constraint (OFA's filter)
        redrawn by the same maker, so a batch keeps its mix of mutants and crossovers. After ``attempts``
        rounds the last draws are kept, infeasible or not: the reward still penalises them, and a cap no arch
        can meet is refused before a search starts.

        A round's cost is numpy call overhead far more than rows, so the redraws are batched: the first draw
        carries spare rows (an eighth more, drawn for every eighth position; positions with equal ``kinds`` labels
        are interchangeable), and a failing row takes the next feasible spare of its kind; rows still failing draw
        ``_REDRAWS`` candidates each per round and keep the first feasible one. Most OFA generations then cost
        one draw and one check instead of two of each."""
        positions = np.arange(n)
        if self.constraint is None or n == 0:
            return make(positions)
        spare_pos = positions[::8]  # every eighth position: the kinds in their batch proportions
        drawn = make(np.concatenate([positions, spare_pos]))
        ok = np.asarray(self.constraint(drawn), dtype=bool)
        out = drawn[:n]
        bad = np.flatnonzero(~ok[:n])
        if bad.size:
            spares = n + np.flatnonzero(ok[n:])
            if kinds is None:
                out[bad[:spares.size]] = drawn[spares[:bad.size]]
                bad = bad[spares.size:]
            else:
                kinds = np.asarray(kinds)
                bad_kind, spare_kind = kinds[bad], kinds[spare_pos[spares - n]]
                filled = np.zeros(bad.size, dtype=bool)
                for k in set(bad_kind.tolist()):
                    slots = np.flatnonzero(bad_kind == k)
                    take = spares[spare_kind == k][:slots.size]
                    out[bad[slots[:take.size]]] = drawn[take]
                    filled[slots[:take.size]] = True
                bad = bad[~filled]
        for attempt in range(attempts):
            if bad.size == 0:
                break
            drawn = make(np.repeat(bad, _REDRAWS)).reshape(bad.size, _REDRAWS, -1)
            ok = np.asarray(self.constraint(drawn.reshape(bad.size * _REDRAWS, -1)), dtype=bool)
            ok = ok.reshape(bad.size, _REDRAWS)
            got = ok.any(axis=1) | (attempt == attempts - 1)  # the last round keeps its draws regardless
            out[bad[got]] = drawn[got, ok[got].argmax(axis=1)]
            bad = bad[~got]
        return out


_REDRAWS = 4  # candidates per failing row in a redraw round


@strategies.register("random")
class RandomSearch(Strategy):
    name = "random"

    def __init__(self, genome: Genome, *, seed: int = 0, constraint: Constraint | None = None,
                 batch: int = 100) -> None:
        super().__init__(genome, seed=seed, constraint=constraint)
        self.batch = batch

    @property
    def batch_size(self) -> int:
        return self.batch

    def ask(self, n: int) -> np.ndarray:
        return self._feasible_fill(lambda rows: self.genome.sample(self.rng, rows.size), n)

    def tell(self, genes: np.ndarray, evaluations: Evaluations) -> None:
        pass  # memoryless


EVOLUTION_PRESETS: dict[str, dict[str, Any]] = {
    # OFA's evolution finder: 100 random, then per generation the best 25 (parent ratio 0.25) breed 50 mutants
    # (mutation ratio 0.5 of the population) and 100 − 50 crossovers
    "ofa": {"initial": 100, "parents": 25, "mutations": 50, "crossovers": 50, "mutation_prob": 0.1},
    # HAT: population 125, 25 parents, 50 mutations, 50 crossovers, mutation prob 0.3
    "hat": {"initial": 125, "parents": 25, "mutations": 50, "crossovers": 50, "mutation_prob": 0.3},
    # SPOS: population 50, top 10, 25 mutations (prob 0.1), 25 crossovers
    "spos": {"initial": 50, "parents": 10, "mutations": 25, "crossovers": 25, "mutation_prob": 0.1},
}


@strategies.register("evolution")
class EvolutionSearch(Strategy):
    """A random first population of ``initial``; then every generation the best ``parents`` of everything
    alive (parents and their children: elitism) breed ``mutations`` mutants of random parents and
    ``crossovers`` crossovers of two different random parents."""

    name = "evolution"

    def __init__(self, genome: Genome, *, seed: int = 0, constraint: Constraint | None = None,
                 preset: str = "ofa", initial: int | None = None, parents: int | None = None,
                 mutations: int | None = None, crossovers: int | None = None,
                 mutation_prob: float | None = None, seed_genes: np.ndarray | None = None) -> None:
        super().__init__(genome, seed=seed, constraint=constraint)
        # archs known to meet a tight cap (the fastest one): the first population starts with them, so that
        # breeding has feasible parents where random sampling would rarely find any
        self.seed_genes = np.zeros((0, genome.n_genes), dtype=np.int64) if seed_genes is None else \
            np.asarray(seed_genes, dtype=np.int64).reshape(-1, genome.n_genes)
        if preset not in EVOLUTION_PRESETS:
            raise ConfigError(f"unknown evolution preset {preset!r}; known: {', '.join(EVOLUTION_PRESETS)}")
        p = EVOLUTION_PRESETS[preset]
        self.preset = preset
        self.initial = int(initial if initial is not None else p["initial"])
        self.parents = int(parents if parents is not None else p["parents"])
        self.mutations = int(mutations if mutations is not None else p["mutations"])
        self.crossovers = int(crossovers if crossovers is not None else p["crossovers"])
        self.mutation_prob = float(mutation_prob if mutation_prob is not None else p["mutation_prob"])
        if not 1 <= self.parents <= self.initial or self.mutations < 0 or self.crossovers < 0 \
                or self.mutations + self.crossovers < 1:
            raise ConfigError(f"evolution needs 1 <= parents <= initial population and at least one child per "
                              f"generation, got initial {self.initial}, parents {self.parents}, mutations "
                              f"{self.mutations}, crossovers {self.crossovers}")
        if self.parents < 2 and self.crossovers:
            raise ConfigError("crossover needs at least 2 parents")
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"mutation probability must be in [0, 1], got {self.mutation_prob}")
        g = genome.n_genes
        self.pop_genes = np.zeros((0, g), dtype=np.int64)
        self.pop_reward = np.zeros(0)
        self.parent_genes = np.zeros((0, g), dtype=np.int64)
        self.parent_reward = np.zeros(0)
        self.bred = 0  # children asked for in the current generation

    @property
    def children(self) -> int:
        return self.mutations + self.crossovers

    @property
    def batch_size(self) -> int:
        return self.initial if self.parent_genes.shape[0] == 0 else self.children

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "initial": self.initial, "parents": self.parents,
                "mutations": self.mutations, "crossovers": self.crossovers, "mutation_prob": self.mutation_prob}

    def ask(self, n: int) -> np.ndarray:
        if self.parent_genes.shape[0] == 0:  # the first population is random (after any seed archs)
            n = min(n, self.initial - self.pop_genes.shape[0])
            seeds = self.seed_genes[self.pop_genes.shape[0]:][:n]
            return np.concatenate([seeds, self._feasible_fill(
                lambda rows: self.genome.sample(self.rng, rows.size), n - seeds.shape[0])])
        n = min(n, self.children - self.bred)
        n_mut = max(0, min(n, self.mutations - self.bred))
        out = self._feasible_fill(lambda rows: self._children(rows < n_mut), n, kinds=np.arange(n) < n_mut)
        self.bred += n
        return out

    def _children(self, mutant: np.ndarray) -> np.ndarray:
        """One child per row: a mutant of a random parent where ``mutant``, else a crossover of two different
        random parents (as OFA and HAT sample them); drawn together, so a generation costs one constraint
        check, not one per kind."""
        p = self.parent_genes.shape[0]
        k = mutant.size
        a = self.rng.integers(0, p, k)
        out = np.empty((k, self.genome.n_genes), dtype=np.int64)
        m, c = np.flatnonzero(mutant), np.flatnonzero(~mutant)
        out[m] = self.genome.mutate(self.parent_genes[a[m]], self.rng, self.mutation_prob)
        if c.size:
            b = (a[c] + self.rng.integers(1, p, c.size)) % p if p > 1 else a[c]
            out[c] = self.genome.crossover(self.parent_genes[a[c]], self.parent_genes[b], self.rng)
        return out

    def tell(self, genes: np.ndarray, evaluations: Evaluations) -> None:
        self.pop_genes = np.concatenate([self.pop_genes, genes])
        self.pop_reward = np.concatenate([self.pop_reward, evaluations.reward])
        if self.pop_genes.shape[0] < self.batch_size:
            return
        # a generation is complete: parents and children compete, the best survive as the next parents
        genes_all = np.concatenate([self.parent_genes, self.pop_genes])
        reward_all = np.concatenate([self.parent_reward, self.pop_reward])
        order = np.argsort(-np.nan_to_num(reward_all, nan=-np.inf), kind="stable")[:self.parents]
        self.parent_genes, self.parent_reward = genes_all[order], reward_all[order]
        self.pop_genes = np.zeros((0, self.genome.n_genes), dtype=np.int64)
        self.pop_reward = np.zeros(0)
        self.bred = 0

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        scalars, _ = super().state()
        return {**scalars, "bred": self.bred}, {"pop_genes": self.pop_genes, "pop_reward": self.pop_reward,
                                                "parent_genes": self.parent_genes,
                                                "parent_reward": self.parent_reward}

    def load_state(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        super().load_state(scalars, arrays)
        self.bred = int(scalars["bred"])
        for name in ("pop_genes", "pop_reward", "parent_genes", "parent_reward"):
            setattr(self, name, np.asarray(arrays[name]))


# ------------------------------------------------------------------------------------------------ NSGA-II

def non_dominated_ranks(objectives: np.ndarray) -> np.ndarray:
    """Pareto rank of each row (0 = non-dominated), all objectives minimised. O(N² · M), vectorised."""
    f = np.asarray(objectives, dtype=np.float64)
    n = f.shape[0]
    le = (f[:, None, :] <= f[None, :, :]).all(axis=2)
    lt = (f[:, None, :] < f[None, :, :]).any(axis=2)
    dominates = le & lt  # [i, j]: i dominates j
    count = dominates.sum(axis=0)
    ranks = np.full(n, -1, dtype=np.int64)
    front = np.flatnonzero(count == 0)
    r = 0
    while front.size:
        ranks[front] = r
        count = count - dominates[front].sum(axis=0)
        count[ranks >= 0] = -1
        front = np.flatnonzero(count == 0)
        r += 1
    return ranks


def crowding_distance(objectives: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within one front (boundary points get infinity)."""
    f = np.asarray(objectives, dtype=np.float64)
    n, m = f.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(f[:, j], kind="stable")
        span = f[order[-1], j] - f[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (f[order[2:], j] - f[order[:-2], j]) / span
    return dist


@strategies.register("nsga2")
class NSGA2Search(Strategy):
    name = "nsga2"
    uses_objectives = True

    def __init__(self, genome: Genome, *, seed: int = 0, constraint: Constraint | None = None,
                 population: int = 100, mutation_prob: float = 0.1) -> None:
        super().__init__(genome, seed=seed, constraint=constraint)
        if population < 4:
            raise ConfigError(f"NSGA-II needs a population of at least 4, got {population}")
        self.population, self.mutation_prob = int(population), float(mutation_prob)
        g = genome.n_genes
        self.pop_genes = np.zeros((0, g), dtype=np.int64)
        self.pop_obj = np.zeros((0, 0))
        self.new_genes = np.zeros((0, g), dtype=np.int64)
        self.new_obj = np.zeros((0, 0))
        self.rank = np.zeros(0, dtype=np.int64)
        self.crowd = np.zeros(0)

    @property
    def batch_size(self) -> int:
        return self.population

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "population": self.population, "mutation_prob": self.mutation_prob}

    def ask(self, n: int) -> np.ndarray:
        n = min(n, self.population - self.new_genes.shape[0])
        if self.pop_genes.shape[0] == 0:
            return self.genome.sample(self.rng, n)

        def children(k: int) -> np.ndarray:
            a, b = self._tournament(k), self._tournament(k)
            mixed = self.genome.crossover(self.pop_genes[a], self.pop_genes[b], self.rng)
            return self.genome.mutate(mixed, self.rng, self.mutation_prob)

        return children(n)

    def _tournament(self, k: int) -> np.ndarray:
        i = self.rng.integers(0, self.pop_genes.shape[0], k)
        j = self.rng.integers(0, self.pop_genes.shape[0], k)
        better = (self.rank[i] < self.rank[j]) | ((self.rank[i] == self.rank[j]) & (self.crowd[i] > self.crowd[j]))
        return np.where(better, i, j)

    def tell(self, genes: np.ndarray, evaluations: Evaluations) -> None:
        obj = evaluations.objectives
        self.new_genes = np.concatenate([self.new_genes, genes])
        self.new_obj = obj if self.new_obj.size == 0 else np.concatenate([self.new_obj, obj])
        if self.new_genes.shape[0] < self.population:
            return
        genes_all = np.concatenate([self.pop_genes, self.new_genes])
        obj_all = self.new_obj if self.pop_obj.size == 0 else np.concatenate([self.pop_obj, self.new_obj])
        ranks = non_dominated_ranks(obj_all)
        keep: list[int] = []
        crowd = np.zeros(len(ranks))
        for r in range(int(ranks.max()) + 1):
            front = np.flatnonzero(ranks == r)
            crowd[front] = crowding_distance(obj_all[front])
            if len(keep) + front.size <= self.population:
                keep += front.tolist()
            else:
                order = front[np.argsort(-crowd[front], kind="stable")]
                keep += order[:self.population - len(keep)].tolist()
                break
        sel = np.array(keep)
        self.pop_genes, self.pop_obj = genes_all[sel], obj_all[sel]
        self.rank, self.crowd = ranks[sel], crowd[sel]
        self.new_genes = np.zeros((0, self.genome.n_genes), dtype=np.int64)
        self.new_obj = np.zeros((0, 0))

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        scalars, _ = super().state()
        return scalars, {"pop_genes": self.pop_genes, "pop_obj": self.pop_obj, "new_genes": self.new_genes,
                         "new_obj": self.new_obj, "rank": self.rank, "crowd": self.crowd}

    def load_state(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        super().load_state(scalars, arrays)
        for name in ("pop_genes", "pop_obj", "new_genes", "new_obj", "rank", "crowd"):
            setattr(self, name, np.asarray(arrays[name]))


# ---------------------------------------------------------------------------------------------- RL

@strategies.register("rl")
class ReinforceController(Strategy):
    """MnasNet's RNN controller with REINFORCE (MnasNet itself used PPO; REINFORCE with a moving-average
    baseline is the NAS-RL original and needs no second network). Advantages are standardised per batch:
    accuracy rewards differ by fractions of a point, and unscaled they barely move the policy. Samples are
    drawn with the strategy's numpy generator from the policy's probabilities, so a seed fixes the search
    and the state is only arrays."""

    name = "rl"

    def __init__(self, genome: Genome, *, seed: int = 0, constraint: Constraint | None = None,
                 batch: int = 32, hidden: int = 64, lr: float = 0.005, baseline_decay: float = 0.95,
                 entropy: float = 1e-3) -> None:
        super().__init__(genome, seed=seed, constraint=constraint)
        import torch

        self.batch, self.hidden, self.lr = int(batch), int(hidden), float(lr)
        self.baseline_decay, self.entropy = float(baseline_decay), float(entropy)
        if self.batch < 1 or self.hidden < 1 or not self.lr > 0 or not 0 <= self.baseline_decay < 1:
            raise ConfigError("rl controller needs batch >= 1, hidden >= 1, lr > 0 and 0 <= baseline_decay < 1")
        g, k = genome.n_genes, genome.max_choices
        gen = torch.Generator().manual_seed(seed)
        self.policy = _Policy(g, k, self.hidden, gen)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        # a large finite penalty, not -inf: 0 · -inf in the entropy's gradient would be NaN
        self.logit_mask = torch.from_numpy(np.where(genome.mask, 0.0, -1e9).astype(np.float32))
        self.baseline: float | None = None
        self.worst: float | None = None  # lowest finite reward seen
        self.updates = 0

    @property
    def batch_size(self) -> int:
        return self.batch

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "batch": self.batch, "hidden": self.hidden, "lr": self.lr,
                "baseline_decay": self.baseline_decay, "entropy": self.entropy}

    def ask(self, n: int) -> np.ndarray:
        import torch

        g = self.genome.n_genes
        out = np.zeros((n, g), dtype=np.int64)
        with torch.no_grad():
            state = None
            prev = torch.zeros(n, dtype=torch.long)
            for t in range(g):
                logits, state = self.policy.step(t, prev, state)
                probs = torch.softmax(logits + self.logit_mask[t], dim=-1).double().numpy()
                u = self.rng.random((n, 1))
                choice = (np.cumsum(probs, axis=1) < u).sum(axis=1)
                choice = np.minimum(choice, self.genome.sizes[t] - 1)
                choice = np.where(self.genome.mask[t, choice], choice, self.genome.allowed_idx[t, 0])
                out[:, t] = choice
                prev = torch.from_numpy(choice + 1)
        return out

    def tell(self, genes: np.ndarray, evaluations: Evaluations) -> None:
        import torch

        reward = self._shaped(np.asarray(evaluations.reward, dtype=np.float64),
                              np.asarray(evaluations.latency_ms, dtype=np.float64))
        mean = float(reward.mean())
        if self.baseline is None:
            self.baseline = mean
        # advantages standardised within the batch (floored relative to the baseline, so a batch of equal
        # rewards does not divide by ~0 and swamp Adam's moment estimates)
        scale = max(float(reward.std()), 1e-3 * abs(self.baseline), 1e-8)
        adv = (reward - self.baseline) / scale
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
        logp, ent = self.policy.log_prob(torch.from_numpy(np.asarray(genes, dtype=np.int64)), self.logit_mask)
        loss = -(torch.from_numpy(adv.astype(np.float32)) * logp).mean() - self.entropy * ent.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1

    def _shaped(self, reward: np.ndarray, latency: np.ndarray) -> np.ndarray:
        """Rewards with the archs past a hard cap (-inf) scored below every feasible reward, by how slow they
        are: ``min(0, worst feasible seen) - 0.1 · latency / batch median``. The anchor stays put while the
        feasible rewards (accuracies, ≥ 0) vary, so the baseline is not thrown off, and a batch that misses the
        cap entirely still pushes the policy towards faster archs."""
        finite = np.isfinite(reward)
        if finite.any():
            low = float(reward[finite].min())
            self.worst = low if self.worst is None else min(self.worst, low)
        if finite.all():
            return reward
        anchor = min(0.0, self.worst if self.worst is not None else 0.0)
        excess = latency / max(float(np.median(latency)), 1e-12)
        return np.where(finite, reward, anchor - 0.1 * excess)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        scalars, _ = super().state()
        arrays = {**_module_arrays("param.", self.policy), **_adam_arrays("adam.", self.optimizer)}
        return {**scalars, "baseline": self.baseline, "worst": self.worst, "updates": self.updates}, arrays

    def load_state(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        super().load_state(scalars, arrays)
        self.baseline, self.worst = scalars["baseline"], scalars["worst"]
        self.updates = int(scalars["updates"])
        _load_module_arrays("param.", self.policy, arrays)
        _load_adam_arrays("adam.", self.optimizer, arrays)


def _module_arrays(prefix: str, module: Any) -> dict[str, np.ndarray]:
    return {f"{prefix}{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _load_module_arrays(prefix: str, module: Any, arrays: Mapping[str, np.ndarray]) -> None:
    import torch

    module.load_state_dict({k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                            if k.startswith(prefix)})


def _adam_arrays(prefix: str, optimizer: Any) -> dict[str, np.ndarray]:
    """An Adam optimizer's per-parameter moments and step counts as arrays ``PREFIX{param}.{name}``."""
    out = {}
    for i, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}{i}.{k}"] = np.array(v.detach().numpy() if hasattr(v, "detach") else v)
    return out


def _load_adam_arrays(prefix: str, optimizer: Any, arrays: Mapping[str, np.ndarray]) -> None:
    import torch

    opt = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for name, v in arrays.items():
        if name.startswith(prefix):
            i, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(i), {})[key] = torch.from_numpy(np.array(v))
    opt["state"] = state
    optimizer.load_state_dict(opt)


class _Policy:
    """An LSTM cell stepping through the genes; the input at each step is an embedding of the previous
    decision (0 = start) plus one of the gene's position, the output a logit per choice."""

    def __init__(self, n_genes: int, max_choices: int, hidden: int, gen: Any) -> None:
        import torch
        from torch import nn

        self.torch = torch
        self.module = nn.ModuleDict({
            "choice": nn.Embedding(max_choices + 1, hidden), "gene": nn.Embedding(n_genes, hidden),
            "cell": nn.LSTMCell(hidden, hidden), "head": nn.Linear(hidden, max_choices)})
        with torch.no_grad():
            for p in self.module.parameters():
                p.copy_(torch.empty_like(p).uniform_(-0.1, 0.1, generator=gen))
            self.module["head"].bias.zero_()  # start uniform over each gene's choices

    def parameters(self) -> Any:
        return self.module.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(dict(state))

    def step(self, t: int, prev: Any, state: Any) -> tuple[Any, Any]:
        torch = self.torch
        x = self.module["choice"](prev) + self.module["gene"](torch.full_like(prev, t))
        h, c = self.module["cell"](x, state)
        return self.module["head"](h), (h, c)

    def log_prob(self, genes: Any, logit_mask: Any) -> tuple[Any, Any]:
        torch = self.torch
        n, g = genes.shape
        state, prev = None, torch.zeros(n, dtype=torch.long)
        logp = torch.zeros(n)
        ent = torch.zeros(n)
        for t in range(g):
            logits, state = self.step(t, prev, state)
            log_probs = torch.log_softmax(logits + logit_mask[t], dim=-1)
            logp = logp + log_probs.gather(1, genes[:, t:t + 1]).squeeze(1)
            p = log_probs.exp()
            ent = ent - (p * log_probs).sum(dim=1)
            prev = genes[:, t] + 1
        return logp, ent


@strategies.register("ddpg")
class DDPGAgent(Strategy):
    """AMC's agent (He et al., ECCV 2018): DDPG stepping through the genes (layers) one by one. At each layer an
    actor maps the state to a continuous action in [0, 1], the position among the gene's allowed choices in
    value order (for pruning: the share of channels kept); a critic learns each action's value.

    As in AMC: the first ``warmup`` episodes (AMC: 100) act uniformly at random; then the actor's action plus
    Gaussian noise of σ = 0.5, decaying by 0.95 per episode, clipped to [0, 1]; every step of an episode is
    credited with the episode's reward minus a moving average of rewards (decay 0.95); the critic regresses onto
    that credit (no bootstrapping, since the whole episode's reward is already the return), the actor ascends the
    critic; 300 × 300 hidden units, Adam at 1e-4 (actor) and 1e-3 (critic), batches of 64 from a replay buffer
    of the last 100 episodes, one update per step of each episode after the warm-up.

    The state of layer t is its position, AMC's static layer description (``layer_features``: channels, kernel,
    stride, size, MACs — each scaled to [0, 1] over the layers) and the previous action. With a latency budget
    (``block_latency``: the latency of each gene's choices, additive, plus ``fixed_ms`` and ``target_ms``) it
    also holds the latency spent so far and the least the remaining layers need, and each action is clamped to the
    largest choice that leaves the remaining layers room to meet the target (AMC's resource-constrained mode), so
    every episode is feasible when the smallest choices are."""

    name = "ddpg"

    def __init__(self, genome: Genome, *, seed: int = 0, constraint: Constraint | None = None,
                 batch: int = 4, warmup: int = 100, hidden: int = 300, actor_lr: float = 1e-4,
                 critic_lr: float = 1e-3, sigma: float = 0.5, sigma_decay: float = 0.95,
                 baseline_decay: float = 0.95, buffer_episodes: int = 100, minibatch: int = 64,
                 layer_features: np.ndarray | None = None, block_latency: np.ndarray | None = None,
                 fixed_ms: float = 0.0, target_ms: float | None = None) -> None:
        super().__init__(genome, seed=seed, constraint=constraint)
        import torch
        from torch import nn

        g = genome.n_genes
        self.batch, self.warmup, self.hidden = int(batch), int(warmup), int(hidden)
        self.actor_lr, self.critic_lr = float(actor_lr), float(critic_lr)
        self.sigma, self.sigma_decay, self.baseline_decay = float(sigma), float(sigma_decay), float(baseline_decay)
        self.minibatch = int(minibatch)
        if self.batch < 1 or self.warmup < 0 or self.hidden < 1 or self.minibatch < 1 or buffer_episodes < 1 \
                or not (self.actor_lr > 0 and self.critic_lr > 0 and self.sigma >= 0) \
                or not 0 < self.sigma_decay <= 1 or not 0 <= self.baseline_decay < 1:
            raise ConfigError("ddpg needs batch, hidden, minibatch and buffer >= 1, warmup >= 0, positive learning "
                              "rates, sigma >= 0, 0 < sigma_decay <= 1 and 0 <= baseline_decay < 1")
        features = np.zeros((g, 0)) if layer_features is None else np.asarray(layer_features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] != g:
            raise ConfigError(f"layer_features must have one row per gene ({g}), got shape {features.shape}")
        span = features.max(axis=0) - features.min(axis=0) if features.size else np.zeros(0)
        self.features = np.where(span > 0, (features - features.min(axis=0)) / np.where(span > 0, span, 1), 0.0) \
            if features.size else features
        self.budget = block_latency is not None
        if self.budget:
            lat = np.asarray(block_latency, dtype=np.float64)
            if lat.shape != (g, int(genome.max_choices)):
                raise ConfigError(f"block_latency must be genes x choices ({g} x {genome.max_choices}), got shape "
                                  f"{lat.shape}")
            if target_ms is None or not target_ms > 0:
                raise ConfigError("ddpg with a latency budget needs target_ms > 0")
            # latency by position among each gene's allowed choices; positions past a gene's count never used
            self.lat_pos = np.full((g, int(genome.n_allowed.max())), np.inf)
            for t in range(g):
                idx = genome.allowed_idx[t, :genome.n_allowed[t]]
                self.lat_pos[t, :idx.size] = lat[t, idx]
            self.fixed_ms, self.target_ms = float(fixed_ms), float(target_ms)
            self.min_lat = np.nanmin(np.where(np.isfinite(self.lat_pos), self.lat_pos, np.nan), axis=1)
        self.state_dim = 2 + self.features.shape[1] + (3 if self.budget else 0)
        h = self.hidden
        self.actor = nn.Sequential(nn.Linear(self.state_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                   nn.Linear(h, 1), nn.Sigmoid())
        self.critic = nn.Sequential(nn.Linear(self.state_dim + 1, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                    nn.Linear(h, 1))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # seeded here, not from torch's global generator: a seed fixes the search
            for layer in (m for net in (self.actor, self.critic) for m in net if isinstance(m, nn.Linear)):
                bound = 1.0 / layer.in_features ** 0.5
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr)
        cap = int(buffer_episodes) * g
        self.buf_s = np.zeros((cap, self.state_dim), dtype=np.float32)
        self.buf_a = np.zeros(cap, dtype=np.float32)
        self.buf_r = np.zeros(cap, dtype=np.float32)
        self.buf_size = self.buf_pos = 0
        self.episodes = 0
        self.baseline: float | None = None
        self.worst: float | None = None
        self._pending: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def batch_size(self) -> int:
        return self.batch

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "batch": self.batch, "warmup": self.warmup, "hidden": self.hidden,
                "actor_lr": self.actor_lr, "critic_lr": self.critic_lr, "sigma": self.sigma,
                "sigma_decay": self.sigma_decay, "baseline_decay": self.baseline_decay,
                "latency_budget": self.target_ms if self.budget else None}

    # ------------------------------------------------------------------------------------ episodes

    def ask(self, n: int) -> np.ndarray:
        import torch

        genome, g = self.genome, self.genome.n_genes
        n_allowed = genome.n_allowed
        states = np.zeros((n, g, self.state_dim), dtype=np.float32)
        actions = np.zeros((n, g), dtype=np.float32)
        out = np.zeros((n, g), dtype=np.int64)
        episode = self.episodes + np.arange(n)
        exploring = episode < self.warmup
        sigma = self.sigma * self.sigma_decay ** np.maximum(episode - self.warmup, 0)
        spent = np.full(n, self.fixed_ms if self.budget else 0.0)
        prev = np.ones(n)
        for t in range(g):
            s = np.zeros((n, self.state_dim))
            s[:, 0] = t / max(g - 1, 1)
            s[:, 1:1 + self.features.shape[1]] = self.features[t]
            s[:, -1 - (3 if self.budget else 0)] = prev
            if self.budget:
                rest = float(self.min_lat[t + 1:].sum())
                s[:, -3] = spent / self.target_ms
                s[:, -2] = rest / self.target_ms
                s[:, -1] = self.lat_pos[t, n_allowed[t] - 1] / self.target_ms
            with torch.no_grad():
                mu = self.actor(torch.from_numpy(s.astype(np.float32))).numpy()[:, 0].astype(np.float64)
            noisy = np.clip(mu + sigma * self.rng.standard_normal(n), 0.0, 1.0)
            a = np.where(exploring, self.rng.random(n), noisy)
            k = int(n_allowed[t])
            pos = np.rint(a * (k - 1)).astype(np.int64)
            if self.budget:  # the largest position at or below the action that leaves the rest room
                room = self.target_ms - spent - float(self.min_lat[t + 1:].sum())
                fits = (self.lat_pos[t, :k][None, :] <= room[:, None] + 1e-9) \
                    & (np.arange(k)[None, :] <= pos[:, None])
                pos = np.where(fits.any(axis=1), k - 1 - fits[:, ::-1].argmax(axis=1),
                               int(np.argmin(self.lat_pos[t, :k])))
                spent = spent + self.lat_pos[t, pos]
            executed = pos / max(k - 1, 1)
            states[:, t] = s
            actions[:, t] = executed
            out[:, t] = genome.allowed_idx[t, pos]
            prev = executed
        self._pending = (states, actions)
        return out

    def tell(self, genes: np.ndarray, evaluations: Evaluations) -> None:
        import torch

        reward = np.asarray(evaluations.reward, dtype=np.float64)
        finite = np.isfinite(reward)
        if finite.any():
            low = float(reward[finite].min())
            self.worst = low if self.worst is None else min(self.worst, low)
        reward = np.where(finite, reward, min(0.0, self.worst if self.worst is not None else 0.0) - 0.1)
        mean = float(reward.mean())
        if self.baseline is None:
            self.baseline = mean
        credit = reward - self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
        if self._pending is not None and self._pending[0].shape[0] == genes.shape[0]:
            states, actions = self._pending
            g = self.genome.n_genes
            for e in range(genes.shape[0]):
                rows = (self.buf_pos + np.arange(g)) % self.buf_s.shape[0]
                self.buf_s[rows], self.buf_a[rows], self.buf_r[rows] = states[e], actions[e], credit[e]
                self.buf_pos = int((self.buf_pos + g) % self.buf_s.shape[0])
                self.buf_size = int(min(self.buf_size + g, self.buf_s.shape[0]))
        self._pending = None
        learning = int(max(0, self.episodes + genes.shape[0] - max(self.warmup, self.episodes)))
        self.episodes += int(genes.shape[0])
        for _ in range(learning * self.genome.n_genes):
            rows = self.rng.integers(0, self.buf_size, min(self.minibatch, self.buf_size))
            s = torch.from_numpy(self.buf_s[rows])
            a = torch.from_numpy(self.buf_a[rows])[:, None]
            r = torch.from_numpy(self.buf_r[rows])[:, None]
            q = self.critic(torch.cat([s, a], dim=1))
            critic_loss = torch.nn.functional.mse_loss(q, r)
            self.critic_opt.zero_grad()
            critic_loss.backward()
            self.critic_opt.step()
            actor_loss = -self.critic(torch.cat([s, self.actor(s)], dim=1)).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()

    # ------------------------------------------------------------------------------------ state

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        scalars, _ = super().state()
        arrays = {**_module_arrays("actor.", self.actor), **_module_arrays("critic.", self.critic),
                  **_adam_arrays("actor_adam.", self.actor_opt), **_adam_arrays("critic_adam.", self.critic_opt),
                  "buf_s": self.buf_s, "buf_a": self.buf_a, "buf_r": self.buf_r}
        return {**scalars, "episodes": self.episodes, "baseline": self.baseline, "worst": self.worst,
                "buf_size": self.buf_size, "buf_pos": self.buf_pos}, arrays

    def load_state(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        super().load_state(scalars, arrays)
        self.episodes, self.baseline, self.worst = int(scalars["episodes"]), scalars["baseline"], scalars["worst"]
        self.buf_size, self.buf_pos = int(scalars["buf_size"]), int(scalars["buf_pos"])
        for name in ("buf_s", "buf_a", "buf_r"):
            setattr(self, name, np.array(arrays[name], dtype=np.float32))
        _load_module_arrays("actor.", self.actor, arrays)
        _load_module_arrays("critic.", self.critic, arrays)
        _load_adam_arrays("actor_adam.", self.actor_opt, arrays)
        _load_adam_arrays("critic_adam.", self.critic_opt, arrays)
        self._pending = None


STRATEGY_NAMES = tuple(sorted(strategies))
