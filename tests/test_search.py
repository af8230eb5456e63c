from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailorkit.core import ConfigError, Latency, LatencyTable, PredictorError, UnknownNameError
from tailorkit.predictors import LutSumPredictor
from tailorkit.search.accuracy import ENCODING, fit_accuracy_predictor
from tailorkit.search.api import SearchResult, build_best, load_search_result, plan_search, search
from tailorkit.search.genome import Genome
from tailorkit.search.objectives import Evaluator, LatencySource
from tailorkit.search.rewards import LatencyCapReward, MnasNetHardReward, MnasNetSoftReward, make_reward
from tailorkit.search.runner import SearchRunner
from tailorkit.search.strategies import (
    EvolutionSearch,
    RandomSearch,
    ReinforceController,
    crowding_distance,
    non_dominated_ranks,
    strategies,
)
from tailorkit.search.supernet import CheckpointError
from tailorkit.spaces import OFAMobileNetV3Space, spaces

from .conftest import SHARED, needs_shared, run_cli

SPACE_NAMES = sorted(spaces)


def _space(name: str):  # noqa: ANN202
    return spaces.create(name)


# ------------------------------------------------------------------------------------------------ genes

@pytest.mark.parametrize("name", SPACE_NAMES)
def test_genes_round_trip_and_moves_stay_in_the_space(name: str) -> None:
    space = _space(name)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    genes = space.genes(archs)
    assert genes.shape == (20, len(space.gene_choices()))
    assert space.from_genes(genes) == archs
    genome = Genome(space)
    idx = genome.from_archs(archs)
    assert genome.archs(idx) == archs
    children = np.concatenate([genome.mutate(idx, rng, 0.1), genome.crossover(idx, idx[::-1], rng),
                               genome.sample(rng, 20)])
    for arch in genome.archs(children):  # every move gives valid archs that survive JSON
        assert space.arch_from_json(space.arch_to_json(arch)) == arch


@pytest.mark.parametrize("name", SPACE_NAMES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), prob=st.floats(0.0, 1.0))
def test_every_mutant_differs_from_its_parent_in_a_live_gene(name: str, seed: int, prob: float) -> None:
    space = _space(name)
    genome = Genome(space)
    rng = np.random.default_rng(seed)
    parents = genome.sample(rng, 30)
    mutants = genome.mutate(parents, rng, prob)
    live = genome.live(parents)
    assert ((mutants != parents) & live).any(axis=1).all()
    assert genome.mask[np.arange(genome.n_genes)[None, :], mutants].all()
    # and the arch itself changes (a dead gene alone would not)
    assert all(a != b for a, b in zip(genome.archs(parents), genome.archs(mutants), strict=True))


def test_restricted_genes_are_never_left() -> None:
    space = OFAMobileNetV3Space()
    genome = Genome(space, {45: [160, 192]})
    rng = np.random.default_rng(1)
    rows = np.concatenate([genome.sample(rng, 200), genome.mutate(genome.sample(rng, 200), rng, 1.0)])
    assert set(genome.values(rows)[:, 45].tolist()) == {160, 192}
    with pytest.raises(ConfigError, match="gene 45"):
        Genome(space, {45: [161]})
    with pytest.raises(ConfigError, match="not one of"):
        genome.indices(space.genes([space.largest(224)]))


# ---------------------------------------------------------------------------------------------- rewards

def test_mnasnet_rewards_match_the_paper() -> None:
    acc, t = np.array([0.7, 0.7, 0.7]), 10.0
    lat = np.array([5.0, 10.0, 20.0])
    soft = MnasNetSoftReward(t)(acc, lat)
    assert soft[1] == pytest.approx(0.7)
    assert soft[0] == pytest.approx(0.7 * 0.5 ** -0.07)
    # twice the target needs ~5 % more accuracy to score the same (2^-0.07 ≈ 0.953)
    assert MnasNetSoftReward(t)(np.array([0.7 / 2 ** -0.07]), np.array([20.0]))[0] == pytest.approx(0.7)
    hard = MnasNetHardReward(t)(acc, lat)
    assert hard.tolist() == pytest.approx([0.7, 0.7, 0.35])
    cap = LatencyCapReward(t)(acc, lat)
    assert cap[:2].tolist() == [0.7, 0.7] and cap[2] == -np.inf
    assert MnasNetSoftReward(t)(None, lat)[1] == pytest.approx(1.0)  # latency-only: ACC = 1


@pytest.mark.parametrize("target", [0, -1.0, float("nan"), float("inf")])
def test_bad_targets_are_refused(target: float) -> None:
    with pytest.raises(ConfigError, match="target latency"):
        make_reward("mnasnet-soft", target)


def test_unknown_reward_and_strategy_list_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="mnasnet-soft"):
        make_reward("fast", 5.0)
    with pytest.raises(UnknownNameError, match="evolution"):
        strategies.get("annealing")


def test_cap_reward_without_accuracy_is_refused() -> None:
    with pytest.raises(ConfigError, match="latency-only"):
        LatencyCapReward(5.0)(None, np.array([1.0]))


# ------------------------------------------------------------------------------------------- strategies

class LinearLatency(LatencySource):
    """Latency = Σ per-gene costs of the chosen values: a known landscape with a known optimum."""

    description = "synthetic linear latency"

    def __init__(self, genome: Genome, seed: int = 0) -> None:
        self.genome = genome
        self.cost = np.random.default_rng(seed).uniform(0.1, 1.0, genome.table.shape)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        idx = self.genome.indices(values)
        return 1.0 + self.cost[np.arange(self.genome.n_genes)[None, :], idx].sum(axis=1)

    def optimum(self) -> float:
        return 1.0 + np.where(self.genome.mask, self.cost, np.inf).min(axis=1).sum()


def _setup(name: str = "nb201", target: float = 1e-3):  # noqa: ANN202
    genome = Genome(_space(name))
    lat = LinearLatency(genome)
    return genome, lat, Evaluator(genome, lat, MnasNetHardReward(target))


@pytest.mark.parametrize("name", ["random", "evolution", "rl", "nsga2"])
def test_same_seed_same_search(name: str) -> None:
    runs = []
    for _ in range(2):
        genome, _, ev = _setup("fbnet")
        runs.append(SearchRunner(ev, strategies.get(name)(genome, seed=3), 600).run())
    assert np.array_equal(runs[0].genes, runs[1].genes)
    assert np.array_equal(runs[0].reward, runs[1].reward)


def test_evolution_and_rl_beat_random_at_equal_budget() -> None:
    gaps = {}
    for name in ("random", "evolution", "rl"):
        genome, lat, ev = _setup("fbnet")
        found = [SearchRunner(ev, strategies.get(name)(genome, seed=s), 3000).run().latency_ms.min()
                 for s in range(3)]
        gaps[name] = np.mean(found) - lat.optimum()
    assert gaps["evolution"] < 0.5 * gaps["random"]
    assert gaps["rl"] < gaps["random"]


def test_evolution_keeps_the_best_parents_and_breeds_the_configured_mix() -> None:
    genome, _, ev = _setup()
    strat = EvolutionSearch(genome, seed=0, preset="hat")
    assert strat.describe()["crossovers"] == 50 and strat.batch_size == 125
    first = strat.ask(125)
    evals = ev(first)
    strat.tell(first, evals)
    top = np.sort(evals.reward)[::-1][:25]
    assert np.allclose(np.sort(strat.parent_reward)[::-1], top)
    assert strat.batch_size == 100
    children = strat.ask(100)
    assert children.shape == (100, genome.n_genes)


def test_constraint_filter_keeps_children_under_the_cap() -> None:
    genome = Genome(_space("fbnet"))
    lat = LinearLatency(genome)
    cap = np.median(lat(genome.values(genome.sample(np.random.default_rng(0), 500))))
    feasible = lambda idx: lat(genome.values(idx)) <= cap  # noqa: E731
    for strat in (EvolutionSearch(genome, seed=1, constraint=feasible), RandomSearch(genome, seed=1,
                                                                                    constraint=feasible)):
        rows = strat.ask(strat.batch_size)
        assert (lat(genome.values(rows)) <= cap).all()


def test_constraint_filter_keeps_each_row_of_its_kind_and_feasible() -> None:
    """Redrawn rows (from the spares or from redraw rounds) keep the kind their position asked for, so a
    generation keeps its mutant/crossover mix; rows nobody can make feasible keep a draw after the attempts."""
    genome = Genome(_space("fbnet"))
    rng = np.random.default_rng(4)
    n, n_mut = 100, 37

    def make(positions: np.ndarray) -> np.ndarray:
        rows = genome.sample(rng, positions.size)
        rows[:, 0] = (positions < n_mut).astype(np.int64)  # gene 0 says which kind the row was made as
        return rows

    for p_fail in (0.05, 0.6, 0.97):
        checked: list[int] = []

        def feasible(idx: np.ndarray, p_fail: float = p_fail, checked: list[int] = checked) -> np.ndarray:
            checked.append(idx.shape[0])
            return (idx[:, 1] + 1) * 1000 % 97 >= p_fail * 97  # deterministic in the row

        strat = RandomSearch(genome, seed=0, constraint=feasible)
        out = strat._feasible_fill(make, n, kinds=np.arange(n) < n_mut)
        assert out.shape == (n, genome.n_genes)
        assert (out[:, 0] == (np.arange(n) < n_mut)).all()
        ok = feasible(out)
        assert ok.all() or p_fail > 0.9
        assert sum(checked) > n
    # the common case is one draw and one check: a few failures are covered by the spares
    checked.clear()
    RandomSearch(genome, seed=0, constraint=lambda idx: (checked.append(1), idx[:, 1] != 0)[1])._feasible_fill(
        make, n, kinds=np.arange(n) < n_mut)
    assert len(checked) <= 2


def test_evaluation_reuses_the_filters_latencies_exactly() -> None:
    genome = Genome(_space("fbnet"))
    lat = LinearLatency(genome)
    calls: list[int] = []

    class Counting(LatencySource):
        def __call__(self, values: np.ndarray) -> np.ndarray:
            calls.append(values.shape[0])
            return lat(values)

    cap = float(np.quantile(lat(genome.values(genome.sample(np.random.default_rng(0), 500))), 0.3))
    ev = Evaluator(genome, Counting(), MnasNetHardReward(cap))
    hist = SearchRunner(ev, EvolutionSearch(genome, seed=2, constraint=ev.feasible), 2000).run()
    assert np.array_equal(hist.latency_ms, lat(genome.values(hist.genes)))
    assert sum(calls) < 2 * hist.genes.shape[0]  # the evaluated batches were not predicted a second time
    # a batch the filter never saw is predicted as usual
    fresh = genome.sample(np.random.default_rng(9), 7)
    assert np.array_equal(ev(fresh).latency_ms, lat(genome.values(fresh)))


def test_mutation_draws_the_other_choices_uniformly() -> None:
    genome = Genome(_space("fbnet"))  # 9 blocks per layer: a mutated gene takes each of the other 8
    parents = np.zeros((4000, genome.n_genes), dtype=np.int64)
    mutants = genome.mutate(parents, np.random.default_rng(0), 1.0)
    counts = np.bincount(mutants.ravel(), minlength=9)
    assert counts[0] == 0
    assert counts[1:].min() > 0.9 * counts[1:].mean() and counts[1:].max() < 1.1 * counts[1:].mean()


def test_nsga2_fronts_and_crowding() -> None:
    obj = np.array([[1, 5], [2, 4], [3, 3], [2, 5], [4, 4], [5, 5]], dtype=float)
    assert non_dominated_ranks(obj).tolist() == [0, 0, 0, 1, 1, 2]
    d = crowding_distance(obj[:3])
    assert np.isinf(d[0]) and np.isinf(d[2]) and np.isfinite(d[1])


def test_nsga2_front_spreads_over_latency_and_accuracy() -> None:
    space = OFAMobileNetV3Space()
    genome = Genome(space, {45: [160]})
    pred = LutSumPredictor(_ofa_table(space, 160))
    acc = fit_accuracy_predictor(*_ofa_accuracy(space), steps=300)
    res, hist = search("ofa-mbv3", target_ms=_mid_latency(space, pred), latency=pred, accuracy=acc,
                       strategy="nsga2", reward="pareto", budget=1500, seed=0)
    lat = np.array([p["latency_ms"] for p in res.pareto])
    accs = np.array([p["accuracy"] for p in res.pareto])
    assert len(res.pareto) >= 5
    assert (np.diff(lat) > 0).all() and (np.diff(accs) > 0).all()  # a front: slower only if more accurate
    assert genome.n_genes == 46


def test_rl_controller_state_round_trips() -> None:
    genome, _, ev = _setup("fbnet")
    a = ReinforceController(genome, seed=0, batch=16)
    for _ in range(3):
        rows = a.ask(16)
        a.tell(rows, ev(rows))
    b = ReinforceController(genome, seed=99, batch=16)
    b.load_state(*a.state())
    assert np.array_equal(a.ask(16), b.ask(16))


# ---------------------------------------------------------------------------------------------- runner

@pytest.mark.parametrize("name", ["evolution", "rl", "nsga2", "random"])
def test_a_killed_search_resumes_exactly(tmp_path: Path, name: str) -> None:
    genome, _, ev = _setup("fbnet")
    full = SearchRunner(ev, strategies.get(name)(genome, seed=5), 900).run()

    ckpt = tmp_path / "search.ckpt"

    def kill(p) -> None:  # noqa: ANN001
        if p.evaluated >= 400:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SearchRunner(ev, strategies.get(name)(genome, seed=5), 900, checkpoint=ckpt, checkpoint_every_s=0,
                     callbacks=[kill]).run()
    runner = SearchRunner(ev, strategies.get(name)(genome, seed=5), 900, checkpoint=ckpt)
    resumed = runner.run()
    assert 400 <= runner.resumed_from < 900
    assert np.array_equal(resumed.genes, full.genes)
    assert np.array_equal(resumed.reward, full.reward)


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    genome, _, ev = _setup()
    ckpt = tmp_path / "s.ckpt"
    SearchRunner(ev, RandomSearch(genome, seed=0), 200, checkpoint=ckpt, fingerprint={"seed": 0}).run()
    with pytest.raises(CheckpointError, match="different search"):
        SearchRunner(ev, RandomSearch(genome, seed=1), 400, checkpoint=ckpt, fingerprint={"seed": 1}).run()
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt"):
        SearchRunner(ev, RandomSearch(genome, seed=0), 400, checkpoint=ckpt, fingerprint={"seed": 0}).run()


@pytest.mark.parametrize("budget", [0, -5, 2.5, True])
def test_bad_budgets_are_refused(budget: object) -> None:
    genome, _, ev = _setup()
    with pytest.raises(ConfigError, match="budget"):
        SearchRunner(ev, RandomSearch(genome), budget)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- api

def _ofa_table(space: OFAMobileNetV3Space, r: int) -> LatencyTable:
    """Latency grows with a block's kernel and expand ratio, as on real devices, plus noise."""
    rng = np.random.default_rng(0)
    entries = {}
    for op in space.all_ops(r):
        size = (op.kernel or 1) ** 2 * (op.expand or 1) * int(np.prod(op.output_shape)) / 1e6
        entries[op.key] = Latency(mean=float(0.05 + size * rng.uniform(0.8, 1.2)), std=0.0, n=1)
    return LatencyTable("t", entries, space="ofa-mbv3")


def _ofa_accuracy(space: OFAMobileNetV3Space) -> tuple[list, np.ndarray]:
    """Accuracy rising with capacity (depth, expand, kernel), as supernets show."""
    rng = np.random.default_rng(0)
    archs = [space.sample(rng, 160) for _ in range(120)]
    arr = space.to_array(archs)
    acc = 0.5 + 0.02 * (arr[:, 40:45].sum(axis=1) - 10) + 0.002 * (arr[:, 20:40].sum(axis=1) - 60) \
        + 0.001 * (arr[:, :20].sum(axis=1) - 60)
    return archs, np.clip(acc, 0.05, 0.99)


def _mid_latency(space: OFAMobileNetV3Space, pred: LutSumPredictor) -> float:
    lo = pred.predict_archs(space, space.to_array([space.smallest(160)]))[0]
    hi = pred.predict_archs(space, space.to_array([space.largest(160)]))[0]
    return float((lo + hi) / 2)


@pytest.fixture(scope="module")
def ofa_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    space = OFAMobileNetV3Space()
    d = tmp_path_factory.mktemp("ofa")
    pred = LutSumPredictor(_ofa_table(space, 160), device="cpu")
    acc = fit_accuracy_predictor(*_ofa_accuracy(space), steps=300)
    assert acc.encoding == ENCODING
    return {"lut": pred.save(d / "lut.tlp"), "acc": acc.save(d / "acc.tlp"), "target": _mid_latency(space, pred),
            "dir": d}


def test_cap_search_meets_the_cap_and_beats_random(ofa_files: dict) -> None:
    kw = {"target_ms": ofa_files["target"], "latency": ofa_files["lut"], "accuracy": ofa_files["acc"],
          "reward": "cap", "budget": 2000}
    evo, hist = search("ofa-mbv3", strategy="evolution", **kw)
    rnd, _ = search("ofa-mbv3", strategy="random", **kw)
    assert evo.best["latency_ms"] <= ofa_files["target"]
    assert evo.best["reward"] >= rnd.best["reward"]
    assert evo.best["arch"]["r"] == 160  # the table holds only 160 px: the genome was restricted to it
    assert any("restricted" in n for n in evo.notes)
    assert evo.curve[-1][0] == 2000 and evo.curve[-1][1] == pytest.approx(evo.best["reward"])
    assert hist.reward.shape == (2000,)


def test_result_file_round_trips_and_is_documented(ofa_files: dict, tmp_path: Path) -> None:
    res, _ = search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"], budget=300)
    path = res.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "tailorkit.search-result" and data["version"] == 1
    assert data["predictor"]["kind"] == "lut" and len(data["predictor"]["sha256"]) == 64
    assert load_search_result(path) == res
    assert any("latency-only" in n for n in res.notes)
    path.write_text('{"schema": "other"}')
    with pytest.raises(ConfigError, match="not a tailorkit search result"):
        load_search_result(path)
    with pytest.raises(ConfigError):
        SearchResult.from_dict({"schema": "tailorkit.search-result", "version": 1})


def test_search_refuses_bad_input(ofa_files: dict) -> None:
    with pytest.raises(ConfigError, match=r"below the fastest arch .*\"r\":160"):
        plan_search("ofa-mbv3", target_ms=0.01, latency=ofa_files["lut"])
    with pytest.raises(PredictorError, match="space 'ofa-mbv3'"):
        plan_search("spos", target_ms=5, latency=ofa_files["lut"])
    with pytest.raises(PredictorError, match="device 'cpu'"):
        plan_search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"], device="pixel")
    with pytest.raises(ConfigError, match="accuracy model"):
        plan_search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"], reward="cap")
    with pytest.raises(PredictorError, match="accuracy predictor"):
        plan_search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"],
                    accuracy=ofa_files["lut"])
    with pytest.raises(ConfigError, match="budget"):
        plan_search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"], budget=0)
    with pytest.raises(ConfigError, match="nsga2"):
        plan_search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"], reward="pareto")
    with pytest.raises(ConfigError, match="not a file"):
        plan_search("ofa-mbv3", target_ms=5, latency=ofa_files["dir"] / "missing.tlp")


def test_other_width_table_is_refused(ofa_files: dict) -> None:
    with pytest.raises(PredictorError, match="another width"):
        plan_search("ofa-mbv3", width=1.2, target_ms=ofa_files["target"], latency=ofa_files["lut"])


def test_search_with_the_deployed_classifier(ofa_files: dict, tmp_path: Path) -> None:
    digits = OFAMobileNetV3Space(num_classes=10)
    table = _ofa_table(OFAMobileNetV3Space(), 160)
    head = {k: v for k, v in _ofa_table(digits, 160).entries.items() if k not in table.entries}
    assert len(head) == 1 and next(iter(head)).endswith("output:10")
    both = LutSumPredictor(LatencyTable("t", {**table.entries, **head}, space="ofa-mbv3"), device="cpu")
    res, _ = search("ofa-mbv3", target_ms=ofa_files["target"], latency=both, budget=300, classes=10)
    assert res.space["num_classes"] == 10
    best = digits.arch_from_dict(res.best["arch"])
    assert res.best["latency_ms"] == pytest.approx(both.predict_archs(digits, digits.to_array([best]))[0])
    assert res.best["latency_ms"] < both.predict_archs(OFAMobileNetV3Space(), digits.to_array([best]))[0]
    space, arch = build_best(res.with_changes())
    assert space.num_classes == 10 and arch == best
    # the CLI records it; a table without that head, or a space without a classifier, is a clear error
    out = tmp_path / "r.json"
    proc = run_cli("search", "--space", "ofa-mbv3", "--latency-ms", f"{ofa_files['target']:.4f}", "--predictor",
                   str(both.save(tmp_path / "both.tlp")), "--budget", "200", "--classes", "10", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["space"]["num_classes"] == 10
    with pytest.raises(PredictorError, match="--classes 10"):
        plan_search("ofa-mbv3", target_ms=ofa_files["target"], latency=ofa_files["lut"], classes=10)
    with pytest.raises(ConfigError, match="--classes applies"):
        plan_search("nb201", target_ms=1.0, latency="help:pixel3", classes=10)


@needs_shared(SHARED / "data" / "help" / "nasbench201_latency_ms.csv")
def test_nb201_latency_only_search_finds_the_measured_optimum() -> None:
    from tailorkit.predictors.datasets import load_nb201

    y = load_nb201().y("pixel3")
    res, _ = search("nb201", target_ms=float(np.median(y)), latency="help:pixel3", budget=3000, seed=0)
    assert res.best["latency_ms"] == pytest.approx(float(y.min()))
    assert res.latency_source == "measured HELP nb201 pixel3"


def test_cli_search_end_to_end(ofa_files: dict, tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    proc = run_cli("search", "--space", "ofa-mbv3", "--latency-ms", f"{ofa_files['target']:.4f}",
                   "--predictor", str(ofa_files["lut"]), "--accuracy", str(ofa_files["acc"]), "--budget", "1500",
                   "--strategy", "evolution", "--preset", "hat", "--export", "onnx", "--train-epochs", "1",
                   "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["strategy"]["preset"] == "hat" and data["evaluations"] == 1500
    assert Path(data["export"]["path"]).is_file() and data["export"]["path"].endswith(".onnx")
    assert data["export"]["weights"] == "trained" and Path(data["export"]["manifest"]).parent == tmp_path / "res-onnx"
    arch_line = next(line for line in proc.stdout.splitlines() if line.startswith("{"))
    assert json.loads(arch_line) == data["best"]["arch"]


def test_cli_search_bad_input_is_one_error_line(ofa_files: dict, tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    for args, match in ((["--latency-ms", "0"], "target latency"),
                        (["--latency-ms", "0.01"], "below the fastest"),
                        (["--latency-ms", "5", "--strategy", "annealing"], "unknown strategy"),
                        (["--latency-ms", "5", "--reward", "fast"], "unknown reward"),
                        (["--latency-ms", "5", "--budget", "0"], "budget")):
        proc = run_cli("search", "--space", "ofa-mbv3", "--predictor", str(ofa_files["lut"]), "-o", str(out),
                       *args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith("error:") and match in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists()


@pytest.mark.parametrize("name", ["spos", "mnasnet"])
def test_lookup_table_search_on_other_buildable_spaces(name: str) -> None:
    space = spaces.create(name)
    rng = np.random.default_rng(0)
    table = LatencyTable("t", {op.key: Latency(mean=float(rng.uniform(0.01, 0.2)), std=0.0, n=1)
                               for op in space.all_ops(space.resolution)}, space=name)
    pred = LutSumPredictor(table)
    res, hist = search(name, target_ms=1000.0, latency=pred, budget=400, seed=0)
    arch = space.arch_from_dict(res.best["arch"])
    assert res.best["latency_ms"] == pytest.approx(sum(table[op.key].mean for op in space.ops(arch)))
    assert res.best["latency_ms"] == pytest.approx(hist.latency_ms.min())  # latency-only: the fastest wins


def test_rl_learns_towards_feasible_archs_under_a_cap() -> None:
    genome = Genome(_space("fbnet"))
    lat = LinearLatency(genome)
    sample = lat(genome.values(genome.sample(np.random.default_rng(0), 2000)))
    cap = float(np.quantile(sample, 0.02))  # ~2 % of random archs meet it
    def evaluate(idx: np.ndarray):  # noqa: ANN202 - accuracy: a constant, so only the cap matters
        from tailorkit.search.strategies import Evaluations

        latency = lat(genome.values(idx))
        reward = LatencyCapReward(cap)(np.full(len(idx), 0.5), latency)
        return Evaluations(latency, np.full(len(idx), 0.5), reward, latency[:, None])

    hist = SearchRunner(evaluate, ReinforceController(genome, seed=0), 3000).run()
    first, last = np.isfinite(hist.reward[:300]).mean(), np.isfinite(hist.reward[-300:]).mean()
    assert last > max(3 * first, 0.2)


def test_cap_nobody_meets_reports_the_fastest(ofa_files: dict) -> None:
    # the planner refuses unreachable targets, so drive the runner directly with a cap below every arch
    from tailorkit.predictors import load_predictor
    from tailorkit.search.api import _result
    from tailorkit.search.objectives import PredictorLatency

    genome = Genome(OFAMobileNetV3Space(), {45: [160]})
    lat = PredictorLatency(genome.space, load_predictor(ofa_files["lut"]))
    ev = Evaluator(genome, lat, LatencyCapReward(1e-6), _acc_source(ofa_files))
    runner = SearchRunner(ev, RandomSearch(genome, seed=0), 300)
    hist = runner.run()
    res = _result(genome.space, genome, hist, runner, {}, {}, "", None, None, [], 300, 0)
    assert res.best["latency_ms"] == pytest.approx(hist.latency_ms.min())
    assert any("no evaluated arch met" in n for n in res.notes)
    assert res.best["reward"] is None
    json.dumps(res.to_dict(), allow_nan=False)


def _acc_source(ofa_files: dict):  # noqa: ANN202
    from tailorkit.predictors import load_predictor
    from tailorkit.search.objectives import AccuracySource

    return AccuracySource(OFAMobileNetV3Space(), load_predictor(ofa_files["acc"]))


def test_resume_with_another_accuracy_model_or_a_smaller_budget_is_refused(ofa_files: dict, tmp_path: Path) -> None:
    ckpt = tmp_path / "s.ckpt"
    kw = {"target_ms": ofa_files["target"], "latency": ofa_files["lut"], "checkpoint": ckpt}
    search("ofa-mbv3", accuracy=ofa_files["acc"], budget=300, **kw)
    space = OFAMobileNetV3Space()
    other = fit_accuracy_predictor(*_ofa_accuracy(space), steps=50, seed=1).save(tmp_path / "other.tlp")
    with pytest.raises(CheckpointError, match="accuracy_digest"):
        search("ofa-mbv3", accuracy=other, budget=600, **kw)
    with pytest.raises(CheckpointError, match="more than the budget"):
        search("ofa-mbv3", accuracy=ofa_files["acc"], budget=100, **kw)
    res, _ = search("ofa-mbv3", accuracy=ofa_files["acc"], budget=600, **kw)  # a larger budget continues
    assert res.resumed_from == 300 and res.evaluations == 600


@pytest.mark.parametrize("name", ["fbnet", "hat"])
def test_model_level_predictor_drives_a_search(name: str) -> None:
    """A model-level predictor reads the space's own encoding; the search's best is what it predicts."""
    from tailorkit.predictors.model import RidgePredictor

    space = spaces.create(name)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    X = space.encode_batch(archs)
    w = rng.uniform(0.5, 1.5, X.shape[1])
    pred = RidgePredictor(space=name, encoding=name).fit(X, 5.0 + X @ w / X.shape[1] * 10)
    res, _ = search(name, target_ms=1e6, latency=pred, budget=500, seed=0)
    arch = space.arch_from_dict(res.best["arch"])
    assert res.best["latency_ms"] == pytest.approx(float(pred.predict(space.encode_batch([arch]))[0]))
    assert res.latency_source.startswith("ridge")
