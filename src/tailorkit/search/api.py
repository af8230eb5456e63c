"""The search facade: names and files in, a :class:`SearchResult` out — the whole closed loop.

``search(space, target_ms=…, latency=…)`` restricts the genome to what the latency source can score, refuses a
target no arch can reach (naming the fastest one), runs the strategy under the runner, and then — with
``device`` — builds the winning arch and measures it end to end on that device, so the result says how far the
prediction was from the run.

SearchResult file (JSON, ``schema`` = ``tailorkit.search-result``, ``version`` 1)::

    space          {name, width, variant, num_classes?}   the space the arch belongs to; num_classes: the
                                                      classifier it was searched with, where the space builds one
    strategy       {name, preset?, …}                 the strategy and its settings
    reward         {name, target_ms, alpha?, beta?}
    budget, seed, evaluations, resumed_from, seconds, evaluations_per_s
    latency_source text: which predictor or measured column scored latency
    predictor      {path, sha256, kind, device, reference?} | null   reference: a calibrated table's speed
                                                      reference {space, width, arch, ms, spread}
    accuracy_source text | null (null: a latency-only search, ACC = 1 in the reward)
    notes          [text]                             what a reader must know (latency-only, restricted genes…)
    best           {arch, reward, latency_ms, accuracy}
    measured       {device, latency_ms: {mean, std, median, …}, predicted_ms, error_pct, input_shape,
                    speed_reference?} | null
                   speed_reference (when the predictor has one): {arch, calibration_ms, now_ms, slowdown
                   (now / calibration), ratio (winner / reference, run in alternation), ratio_spread, pairs,
                   latency_ms (ratio × calibration_ms: the winner at the calibration's machine speed), error_pct}
    pareto         [{arch, latency_ms, accuracy}]     the latency/accuracy front of everything evaluated
    curve          [[evaluations, best reward]]       best reward so far, ~100 points
    export         {format, path, sha256, manifest, weights} | null   (`--export`: see tailor export)
    created, tailorkit                               when, and by which version
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.documents import from_document, read_json_object, sha256_file
from tailorkit.core.errors import ConfigError, PredictorError
from tailorkit.core.version import __version__
from tailorkit.predictors.base import Predictor, load_predictor
from tailorkit.search.genome import Genome
from tailorkit.search.objectives import AccuracySource, Evaluator, LatencySource, PredictorLatency, help_column
from tailorkit.search.rewards import make_reward
from tailorkit.search.runner import SearchHistory, SearchProgress, SearchRunner
from tailorkit.search.strategies import strategies
from tailorkit.spaces import create_space

log = logging.getLogger(__name__)
SCHEMA = "tailorkit.search-result"
SCHEMA_VERSION = 1
PARETO_MAX = 50


@dataclass(frozen=True)
class SearchResult:
    space: dict[str, Any]
    strategy: dict[str, Any]
    reward: dict[str, Any]
    budget: int
    seed: int
    evaluations: int
    resumed_from: int
    seconds: float
    latency_source: str
    accuracy_source: str | None
    best: dict[str, Any]
    pareto: list[dict[str, Any]]
    curve: list[list[float]]
    notes: list[str] = field(default_factory=list)
    predictor: dict[str, Any] | None = None
    measured: dict[str, Any] | None = None
    export: dict[str, Any] | None = None
    created: str = ""
    tailorkit: str = __version__

    @property
    def evaluations_per_s(self) -> float:
        return self.evaluations / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, **asdict(self),
                "evaluations_per_s": round(self.evaluations_per_s, 1) if self.seconds > 0 else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        return from_document(cls, data, SCHEMA, SCHEMA_VERSION, "search result")

    def save(self, path: str | Path) -> Path:
        """Written to a temporary file and renamed, so an interrupted write leaves no half file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
        return path

    def with_changes(self, **changes: Any) -> SearchResult:
        return SearchResult(**{**asdict(self), **changes})


def load_search_result(path: str | Path) -> SearchResult:
    return SearchResult.from_dict(read_json_object(path, "search result"))


# ----------------------------------------------------------------------------------------------- sources

def latency_source(space: Any, spec: str | Path | Predictor | LatencySource, *, device: str | None = None
                   ) -> tuple[LatencySource, dict[str, Any] | None]:
    """A latency source from a predictor file (``.tlp``), a fitted predictor, or ``help:DEVICE`` (HELP's
    measured NAS-Bench-201 column)."""
    if isinstance(spec, LatencySource):
        return spec, None
    if isinstance(spec, Predictor):
        reference = getattr(spec, "reference_", None)
        return PredictorLatency(space, spec, device=device), {
            "kind": spec.kind, "device": spec.device, **({"reference": reference} if reference is not None else {})}
    text = str(spec)
    if text.startswith("help:"):
        return help_column(space, text.split(":", 1)[1]), None
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"latency predictor {text!r} is not a file (train one with `tailor predictor train`, "
                          "or use help:DEVICE for NAS-Bench-201's measured columns)")
    predictor = load_predictor(path, space=space.name)
    reference = getattr(predictor, "reference_", None)
    return PredictorLatency(space, predictor, device=device), {
        "path": str(path), "sha256": sha256_file(path), "kind": predictor.kind, "device": predictor.device,
        **({"reference": reference} if reference is not None else {})}


def head_mismatch_note(info: Mapping[str, Any] | None, space: Any) -> str | None:
    """A note when a lookup table's end-to-end calibration measured models with another classifier than
    ``space``'s: in a whole model a classifier costs what loading its weights from memory costs (OFA w1.2's
    1000-class one about 0.3 ms on this project's CPUs), not its table entry, timed alone with its weights in
    cache (0.08 ms), so the correction carries the calibration head's share into every prediction."""
    reference = (info or {}).get("reference") or {}
    calibrated, predicting = reference.get("num_classes"), getattr(space, "num_classes", None)
    if calibrated is None or predicting is None or int(calibrated) == int(predicting):
        return None
    return (f"the predictor's end-to-end correction was calibrated on {calibrated}-class models and this one has "
            f"{predicting} classes: a classifier costs more in a whole model than its table entry says, so expect "
            f"the prediction to be off by that difference (recalibrate with `tailor predictor calibrate --classes "
            f"{predicting}`)")


def accuracy_source(space: Any, spec: str | Path | Predictor | None) -> AccuracySource | None:
    if spec is None:
        return None
    if isinstance(spec, Predictor):
        return AccuracySource(space, spec)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"accuracy predictor {str(spec)!r} is not a file (make one with "
                          "`tailor supernet accuracy CKPT -o acc.tlp`)")
    try:
        return AccuracySource(space, load_predictor(path, space=space.name))
    except PredictorError as exc:
        raise PredictorError(f"accuracy predictor {str(path)!r}: {exc}") from None


def fastest_reachable(genome: Genome, latency: LatencySource, seed: int = 0) -> tuple[float, np.ndarray]:
    """The fastest arch the latency source knows: the space's smallest arch where it has one (at each allowed
    resolution), else the best of a short latency-minimising evolution. Used to refuse unreachable targets."""
    from tailorkit.search.rewards import MnasNetHardReward
    from tailorkit.search.strategies import EvolutionSearch

    candidates = []
    space = genome.space
    if hasattr(space, "smallest"):
        small = space.genes([space.smallest()])
        if space.name == "ofa-mbv3":  # the smallest blocks at every resolution the search may use
            res = genome.table[-1, genome.mask[-1]]
            small = np.repeat(small, res.size, axis=0)
            small[:, -1] = res
        try:
            candidates.append(genome.indices(small))
        except ConfigError:
            pass
    # a short evolution on latency alone (ACC = 1, hard reward): cheap, and covers spaces without a smallest
    evaluate = Evaluator(genome, latency, MnasNetHardReward(1e-9))
    hist = SearchRunner(evaluate, EvolutionSearch(genome, seed=seed, preset="ofa"), 1500).run()
    candidates.append(hist.genes[[int(np.argmin(hist.latency_ms))]])
    rows = np.concatenate(candidates)
    lat = latency(genome.values(rows))
    i = int(np.argmin(lat))
    return float(lat[i]), rows[i]


def largest_latency(genome: Genome, latency: LatencySource) -> float:
    """Predicted latency of the space's largest arch at the highest resolution the search may use."""
    space = genome.space
    if not hasattr(space, "largest"):
        raise ConfigError(f"space {space.name!r} has no largest arch to take a target ratio of; give --latency-ms")
    row = space.genes([space.largest()])
    if space.name == "ofa-mbv3":
        row[:, -1] = genome.table[-1, genome.mask[-1]].max()
    return float(latency(row)[0])


# -------------------------------------------------------------------------------------------------- search

@dataclass
class SearchPlan:
    """A checked, ready search: every argument validated and every file loaded, nothing run yet (so a CLI can
    report bad input before it draws a progress bar)."""

    space: Any
    genome: Genome
    evaluator: Evaluator
    strategy: Any
    budget: int
    seed: int
    fingerprint: dict[str, Any]
    notes: list[str]
    predictor_info: dict[str, Any] | None
    checkpoint: str | Path | None = None

    def run(self, progress: Callable[[SearchProgress], None] | None = None) -> tuple[SearchResult, SearchHistory]:
        runner = SearchRunner(self.evaluator, self.strategy, self.budget, fingerprint=self.fingerprint,
                              checkpoint=self.checkpoint, callbacks=[progress] if progress else [])
        hist = runner.run()
        ev = self.evaluator
        return _result(self.space, self.genome, hist, runner, self.strategy.describe(), ev.reward.describe(),
                       ev.latency.description, ev.accuracy.description if ev.accuracy else None,
                       self.predictor_info, self.notes, self.budget, self.seed), hist


def plan_search(space: str, *, target_ms: float | None = None, latency: str | Path | Predictor | LatencySource,
                accuracy: str | Path | Predictor | None = None, strategy: str = "evolution",
                reward: str = "mnasnet-soft", budget: int = 10_000, seed: int = 0, width: float = 1.0,
                preset: str | None = None, strategy_options: Mapping[str, Any] | None = None,
                device: str | None = None, checkpoint: str | Path | None = None,
                target_ratio: float | None = None, classes: int | None = None) -> SearchPlan:
    """Check and load everything a search needs. The target is ``target_ms``, or ``target_ratio`` times the
    predicted latency of the space's largest arch (a target that means the same on any machine). ``classes``
    gives a space built here the classifier the searched model will be deployed with (10 for the digits
    supernets; the spaces default to ImageNet's 1000, as published tables do)."""
    space_obj = with_classes(create_space(space, width), classes)
    if (target_ms is None) == (target_ratio is None):
        raise ConfigError("give a target latency in ms or as a ratio of the largest arch's latency (not both)")
    if target_ratio is not None and not (isinstance(target_ratio, (int, float)) and 0 < target_ratio <= 1):
        raise ConfigError(f"the target ratio must be in (0, 1], got {target_ratio!r}")
    reward_obj = make_reward(reward, 1.0 if target_ms is None else target_ms)  # checks the target up front
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"the search budget must be a positive number of evaluations, got {budget!r}")
    factory = strategies.get(strategy)
    if reward == "pareto" and strategy != "nsga2":
        raise ConfigError("the pareto reward is searched with --strategy nsga2")
    options = dict(strategy_options or {})
    if preset is not None:
        if strategy != "evolution":
            raise ConfigError("--preset applies to the evolution strategy only")
        options["preset"] = preset
    source, predictor_info = latency_source(space_obj, latency, device=device)
    acc = accuracy_source(space_obj, accuracy)
    notes: list[str] = [note] if (note := head_mismatch_note(predictor_info, space_obj)) else []
    allowed = source.allowed_genes()
    genome = Genome(space_obj, allowed)
    if allowed:
        notes.append("genes restricted to what the latency source can score: "
                     + ", ".join(f"gene {g} in {v}" for g, v in allowed.items()))
    if acc is None:
        notes.append("latency-only search: there is no accuracy model for this space here, so the reward uses "
                     "ACC = 1 and ranks archs by latency alone")
    if target_ratio is not None:
        reward_obj = make_reward(reward, target_ratio * largest_latency(genome, source))
        notes.append(f"target {reward_obj.target_ms:.4g} ms = {target_ratio:g} x the largest arch's predicted "
                     "latency")
    evaluator = Evaluator(genome, source, reward_obj, acc)
    fastest, fastest_row = fastest_reachable(genome, source, seed)
    if fastest > reward_obj.target_ms:
        arch = space_obj.arch_to_json(genome.archs(fastest_row[None])[0])
        raise ConfigError(f"target {reward_obj.target_ms:g} ms is below the fastest arch the latency source "
                          f"knows in {space} ({fastest:.4g} ms: {arch})")
    constraint = evaluator.feasible if reward == "cap" else None
    if reward == "cap" and strategy == "evolution":
        options.setdefault("seed_genes", fastest_row[None])
    try:
        strat = factory(genome, seed=seed, constraint=constraint, **options)
    except TypeError as exc:
        raise ConfigError(f"strategy {strategy}: {exc}") from None
    fingerprint = {"space": space, "width": width, "strategy": strat.describe(), "reward": reward_obj.describe(),
                   "latency": source.description, "latency_digest": _digest(latency),
                   "accuracy_digest": _digest(accuracy), "seed": seed, "allowed": allowed,
                   **({"classes": classes} if classes is not None else {})}
    return SearchPlan(space_obj, genome, evaluator, strat, budget, seed, fingerprint, notes, predictor_info,
                      checkpoint)


def with_classes(space: Any, classes: int | None) -> Any:
    """``space`` with a ``classes``-way classifier (None: as it is)."""
    if classes is None:
        return space
    if not hasattr(space, "with_classes"):
        raise ConfigError(f"space {space.name!r} has no classifier built here; --classes applies to "
                          "ofa-mbv3, spos, spos-reduced and mnasnet")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ConfigError(f"classes must be a whole number >= 1, got {classes!r}")
    return space.with_classes(classes)


def _digest(spec: Any) -> str | None:
    """What identifies a latency or accuracy model in a checkpoint: a file's sha256, a predictor's fitted
    state, or a source's description."""
    import hashlib

    if spec is None:
        return None
    if isinstance(spec, Predictor):
        scalars, arrays, blobs = spec._fitted_state()
        h = hashlib.sha256(json.dumps([spec.kind, scalars, blobs], sort_keys=True, default=str).encode())
        for name in sorted(arrays):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arrays[name]).tobytes())
        return h.hexdigest()
    if isinstance(spec, LatencySource):
        return spec.description
    path = Path(spec)
    if path.is_file():
        return sha256_file(path)
    return str(spec)


def search(space: str, *, progress: Callable[[SearchProgress], None] | None = None, **kwargs: Any
           ) -> tuple[SearchResult, SearchHistory]:
    """Plan and run a search (see :func:`plan_search` for the arguments); not yet measured on a device: see
    :func:`measure_result`."""
    return plan_search(space, **kwargs).run(progress)


def _result(space: Any, genome: Genome, hist: SearchHistory, runner: SearchRunner, strategy: dict[str, Any],
            reward: dict[str, Any], latency_desc: str, acc_desc: str | None, predictor: dict[str, Any] | None,
            notes: list[str], budget: int, seed: int) -> SearchResult:
    def entry(i: int) -> dict[str, Any]:
        return {"arch": space.arch_to_dict(genome.archs(hist.genes[i:i + 1])[0]),
                "latency_ms": _finite(hist.latency_ms[i]),
                "accuracy": None if hist.accuracy is None else _finite(hist.accuracy[i])}

    best_i = hist.best_index()
    if not np.isfinite(hist.reward[best_i]):  # a hard cap nothing met: report the fastest, and say so
        best_i = int(np.argmin(hist.latency_ms))
        notes = [*notes, "no evaluated arch met the latency cap; the fastest one is reported"]
    front = hist.pareto_front()
    if front.size > PARETO_MAX:  # evenly spread over the front
        front = front[np.linspace(0, front.size - 1, PARETO_MAX).round().astype(int)]
    curve = hist.best_so_far()
    points = np.unique(np.linspace(1, len(curve), min(100, len(curve))).round().astype(int))
    finite = curve[points - 1]
    return SearchResult(
        space={"name": space.name, "width": getattr(space, "width", None),
               "variant": getattr(space, "variant", space.name),
               **({"num_classes": space.num_classes} if hasattr(space, "with_classes") else {})},
        strategy=strategy, reward=reward, budget=budget, seed=seed, evaluations=len(hist),
        resumed_from=runner.resumed_from, seconds=round(runner.seconds, 4), latency_source=latency_desc,
        accuracy_source=acc_desc, best={**entry(best_i), "reward": _finite(hist.reward[best_i])},
        pareto=[entry(int(i)) for i in front],
        curve=[[int(p), _finite(v)] for p, v in zip(points, finite, strict=True)], notes=notes,
        predictor=predictor, created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------- closed loop

def build_best(result: SearchResult) -> tuple[Any, Any]:
    """The space and the winning arch of a result (checked against the space)."""
    space = with_classes(create_space(result.space["name"], result.space.get("width") or 1.0),
                         result.space.get("num_classes"))
    return space, space.arch_from_dict(result.best["arch"])


def measure_result(result: SearchResult, device: str, *, config: Any = None) -> SearchResult:
    """Build the winning arch, run it end to end on ``device`` and record measured vs predicted latency; when the
    predictor keeps a speed reference (a calibration against one), in alternation with that reference."""
    from tailorkit.profiler.api import measure_closed_loop

    space, arch = build_best(result)
    if not space.buildable:
        raise ConfigError(f"space {space.name!r} has no ops to build here, so its winner cannot be measured "
                          "(its latencies come from public tables)")
    shape = space.input_shape(arch)
    predicted = float(result.best["latency_ms"])
    measured = measure_closed_loop(space.build(arch), shape, device, config=config,
                                   reference=(result.predictor or {}).get("reference"))
    entry = measured.entry(predicted)
    entry.pop("fingerprint")
    return result.with_changes(measured={**entry, "predicted_ms": predicted, "input_shape": list(shape)})
