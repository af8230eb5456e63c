"""`tailor prune`: AMC-style channel pruning of a trained OFA-MBv3 subnet under a latency budget, its DDPG agent,
the saved result and its export."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tailorkit.core import BenchmarkSettings, ConfigError, Latency, LatencyTable
from tailorkit.devices.base import Device
from tailorkit.predictors import LutSumPredictor
from tailorkit.search.api import SearchResult
from tailorkit.search.genome import Genome
from tailorkit.search.objectives import Evaluator
from tailorkit.search.prune import (
    KEEP_EIGHTHS,
    PruningSpace,
    kept_width,
    predictor_latency,
    prune,
    prune_block,
    prune_network,
    pruned_model,
    write_result,
)
from tailorkit.search.rewards import LatencyCapReward
from tailorkit.search.runner import SearchRunner
from tailorkit.search.specialize import ExportOptions, digits_space, export_prune_result
from tailorkit.search.strategies import DDPGAgent
from tailorkit.search.supernet import calibrated_subnet, load_digits_splits, load_supernet
from tailorkit.spaces import OFAMobileNetV3Space
from tailorkit.spaces.blocks import MBConv
from tests.conftest import run_cli

DATA = load_digits_splits()
OFA = OFAMobileNetV3Space(width=1.0)
ARCH = OFA.arch_from_dict({"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [2, 2, 3, 2, 2], "r": 128})
PRUNING = PruningSpace(OFA, ARCH)


def _macs_table(space: PruningSpace) -> LatencyTable:
    """A lookup table over every op the pruning can use, latency ∝ multiply-accumulates (+ a fixed cost)."""
    entries = {}
    for op in space.grid_ops():
        h, _, cin = op.input_shape
        cout = op.output_shape[-1]
        mid = op.expand or cin
        macs = h * h * (cin * mid + mid * op.kernel ** 2 + mid * cout)
        entries[op.key] = Latency(mean=0.01 + macs / 2e7, std=0.0, n=10)
    return LatencyTable("synthetic", entries, space="ofa-mbv3")


@pytest.fixture(scope="module")
def supernet(ofa_supernet: Path) -> Path:
    return ofa_supernet


@pytest.fixture(scope="module")
def base(supernet: Path) -> torch.nn.Sequential:
    net, _, _ = load_supernet(supernet)
    return calibrated_subnet(net, DATA, ARCH)


# ------------------------------------------------------------------------------------------- space, modules


def test_widths_are_multiples_of_8_within_the_block_and_never_its_input() -> None:
    for i in PRUNING.blocks:
        op = PRUNING.base_ops[i]
        widths = [kept_width(op, k) for k in KEEP_EIGHTHS]
        assert widths == sorted(widths) and widths[-1] == op.expand
        assert all(w % 8 == 0 and 8 <= w <= op.expand and w != op.input_shape[-1] for w in widths)
    with pytest.raises(ConfigError, match="prunable blocks"):
        PRUNING.pruned_ops([8, 8])
    with pytest.raises(ConfigError, match="kept eighths must be among"):
        PRUNING.pruned_ops([9] * PRUNING.n_blocks)


def test_keeping_everything_is_the_same_network(base: torch.nn.Sequential) -> None:
    ops = digits_space(OFA).ops(ARCH)
    same = prune_network(base, PRUNING, [8] * PRUNING.n_blocks, ops)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(same(x), base(x))


def test_a_pruned_block_computes_the_block_without_its_weakest_channels(base: torch.nn.Sequential) -> None:
    """Without SE, dropping middle channels is exactly zeroing their project weights in the original."""
    ops = digits_space(OFA).ops(ARCH)
    i = next(i for i in PRUNING.blocks if not ops[i].se)
    block = base[i]
    assert isinstance(block, MBConv)
    width = kept_width(ops[i], 3)
    pruned = prune_block(block, replace(ops[i], expand=width))
    assert pruned.depthwise[0].weight.shape[0] == width
    weakest = block.project[0].weight.abs().sum(dim=(0, 2, 3)).argsort()[:ops[i].expand - width]
    zeroed = prune_block(block, ops[i])  # a full copy
    with torch.no_grad():
        zeroed.project[0].weight[:, weakest] = 0
        x = torch.randn(2, ops[i].input_shape[-1], 8, 8)
        assert torch.allclose(pruned(x), zeroed(x), atol=1e-5)


def test_block_latency_is_the_table_sum_of_the_pruned_ops() -> None:
    table = _macs_table(PRUNING)
    latency = predictor_latency(PRUNING, LutSumPredictor(table), what="synthetic")
    rng = np.random.default_rng(0)
    keeps = rng.choice(KEEP_EIGHTHS, size=(20, PRUNING.n_blocks))
    direct = [sum(table[op.key].mean for op in PRUNING.pruned_ops(k)) for k in keeps]
    assert np.allclose(latency(keeps), direct)
    per_block, fixed = latency.per_block()
    assert np.allclose(fixed + per_block[np.arange(PRUNING.n_blocks), keeps[0] - 2].sum(), direct[0])


def test_a_table_without_the_pruned_widths_names_the_missing_op() -> None:
    full_only = LatencyTable("base", {op.key: Latency(mean=0.1, std=0.0, n=1) for op in PRUNING.base_ops},
                             space="ofa-mbv3")
    with pytest.raises(Exception, match="no latency for op 'expanded_conv.*tailor prune --device"):
        predictor_latency(PRUNING, LutSumPredictor(full_only), what="base table")


class _LineDevice(Device):
    """Runs exported networks and answers ``scale · (their table sum) + offset`` ms (read from the file name the
    calibration gives each network), each run slower than the last: a device whose whole-network behaviour is
    known exactly, on a machine whose speed drifts."""

    model_format = "onnx"

    def __init__(self, sums: dict[str, float], scale: float, offset: float) -> None:
        super().__init__("line")
        self.sums, self.scale, self.offset, self.slowdown = sums, scale, offset, 1.0

    def info(self, settings: object = None) -> Any:
        raise NotImplementedError

    def check(self) -> None:
        return None

    def profile_ops(self, path: Path, settings: object, input_shapes: object = None) -> Any:
        raise NotImplementedError

    def run_model(self, path: Path, settings: object, input_shapes: object = None) -> Latency:
        assert Path(path).is_file() and Path(path).stat().st_size > 0
        ms = self.scale * self.sums[Path(path).stem] + self.offset
        if Path(path).stem == "unpruned":  # a pair (unpruned, then smallest) runs at one speed, the next 10 % slower
            self.slowdown *= 1.1
        return Latency(mean=ms * self.slowdown, std=0.0, n=1, median=ms * self.slowdown)


@pytest.mark.parametrize(("scale", "offset"), [(0.8, -0.5), (1.1, 0.2)])
def test_calibration_fits_the_line_through_the_measured_extremes(scale: float, offset: float) -> None:
    from tailorkit.search.prune import _calibrated

    latency = predictor_latency(PRUNING, LutSumPredictor(_macs_table(PRUNING)), what="synthetic")
    ends = {"unpruned": [8] * PRUNING.n_blocks, "smallest": [2] * PRUNING.n_blocks}
    sums = {k: float(latency(np.array([v]))[0]) for k, v in ends.items()}
    device = _LineDevice(sums, scale, offset)
    device.slowdown = 1 / 1.1  # the first pair at the line's own speed, then 1.1, 1.21, 1.331, 1.4641 × slower
    cal = _calibrated(PRUNING, latency, device, BenchmarkSettings(warmup=0, runs=1))
    # the smallest pruning sits at its ratio to the unpruned subnet in the same pair, the unpruned subnet at its
    # median: the line is the machine's at its median speed over the calibration, not tilted by the drift
    speed = 1.1 ** 2
    assert cal.calibration["pairs"] == 5 and cal.calibration["ratio_spread"] == pytest.approx(0.0, abs=1e-12)
    assert cal.calibration["scale"] == pytest.approx(speed * scale)
    assert cal.calibration["offset_ms"] == pytest.approx(speed * offset)
    ref = cal.calibration["reference"]  # the unpruned subnet, for the prune's closed loop
    assert ref["arch"] == PRUNING.base_space.arch_to_dict(PRUNING.arch) and ref["num_classes"] == 1000
    assert ref["ms"] == pytest.approx(speed * (scale * sums["unpruned"] + offset))
    scale, offset = speed * scale, speed * offset
    keeps = np.random.default_rng(1).choice(KEEP_EIGHTHS, size=(5, PRUNING.n_blocks))
    assert np.allclose(cal(keeps), scale * latency(keeps) + offset)
    per_block, fixed = cal.per_block()
    assert np.allclose(fixed + per_block[np.arange(PRUNING.n_blocks), keeps[0] - 2].sum(), cal(keeps[:1])[0])
    assert latency.calibration is None  # the uncalibrated source is left as it was


# --------------------------------------------------------------------------------------------------- DDPG


def _budget_problem(seed: int = 0):  # noqa: ANN202
    """A synthetic pruning: additive latency, accuracy rising with every block's kept share but with
    different weights, so where to cut matters."""
    latency = predictor_latency(PRUNING, LutSumPredictor(_macs_table(PRUNING)), what="synthetic")
    per_block, fixed = latency.per_block()
    weight = np.random.default_rng(seed).uniform(0.0, 1.0, PRUNING.n_blocks)

    class Accuracy:
        description = "synthetic"

        def __call__(self, values: np.ndarray) -> np.ndarray:
            return 0.5 + 0.05 * (np.log(values / 8.0) * weight).sum(axis=1) / weight.sum()

    full = float(latency(np.array([[8] * PRUNING.n_blocks]))[0])
    smallest = float(latency(np.array([[2] * PRUNING.n_blocks]))[0])
    target = smallest + 0.4 * (full - smallest)
    genome = Genome(PRUNING)
    evaluator = Evaluator(genome, latency, LatencyCapReward(target), Accuracy())  # type: ignore[arg-type]
    options = {"block_latency": per_block, "fixed_ms": fixed, "target_ms": target, "hidden": 32, "warmup": 20}
    return genome, evaluator, options, target


def test_ddpg_keeps_every_episode_within_the_budget_and_learns() -> None:
    genome, evaluator, options, target = _budget_problem()
    agent = DDPGAgent(genome, seed=0, **options)
    hist = SearchRunner(evaluator, agent, 160).run()
    assert (hist.latency_ms <= target + 1e-9).all()  # the clamp: no episode breaks the budget
    assert np.isfinite(hist.reward).all()
    # after the random warm-up the actor's prunings score better than the warm-up's
    assert hist.reward[-40:].mean() > hist.reward[:20].mean()


def test_ddpg_same_seed_same_search_and_exact_resume(tmp_path: Path) -> None:
    genome, evaluator, options, _ = _budget_problem()
    runs = [SearchRunner(evaluator, DDPGAgent(genome, seed=3, **options), 48).run() for _ in range(2)]
    assert np.array_equal(runs[0].genes, runs[1].genes)
    ckpt = tmp_path / "ddpg.npz"
    first = SearchRunner(evaluator, DDPGAgent(genome, seed=3, **options), 24, checkpoint=ckpt)
    first.run()
    resumed = SearchRunner(evaluator, DDPGAgent(genome, seed=3, **options), 48, checkpoint=ckpt).run()
    assert np.array_equal(resumed.genes, runs[0].genes)


def test_ddpg_refuses_a_malformed_budget() -> None:
    genome, _, options, _ = _budget_problem()
    with pytest.raises(ConfigError, match="block_latency must be genes x choices"):
        DDPGAgent(genome, **{**options, "block_latency": options["block_latency"][:, :3]})
    with pytest.raises(ConfigError, match="target_ms > 0"):
        DDPGAgent(genome, **{**options, "target_ms": None})
    with pytest.raises(ConfigError, match="one row per gene"):
        DDPGAgent(genome, layer_features=np.zeros((2, 3)))


# ------------------------------------------------------------------------------------ prune, save, export


def test_prune_saves_a_result_that_reloads_and_exports(supernet: Path, tmp_path: Path) -> None:
    latency = predictor_latency(PRUNING, LutSumPredictor(_macs_table(PRUNING)), what="synthetic")
    full = float(latency(np.array([[8] * PRUNING.n_blocks]))[0])
    smallest = float(latency(np.array([[2] * PRUNING.n_blocks]))[0])
    target = smallest + 0.5 * (full - smallest)
    result, net = prune(OFA, ARCH, supernet, latency, target_ms=target, episodes=12, finetune_epochs=1,
                        data=DATA, options={"hidden": 32, "warmup": 4})
    assert result.predicted["latency_ms"] <= target
    assert all(w <= b for w, b in zip(result.widths, result.base_widths, strict=True))
    assert result.weights["parameters"] < result.weights["base_parameters"]
    assert result.uniform is not None and result.uniform["latency_ms"] <= target
    path = tmp_path / "p" / "pruned.json"
    result = write_result(result, path, net)
    assert sorted(p.name for p in path.parent.iterdir()) == ["pruned.json", "pruned.npz"]
    loaded, space, arch, again = pruned_model(path)
    assert loaded == result and arch == ARCH
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again(x), net(x))

    manifest = export_prune_result(path, tmp_path / "onnx", ExportOptions(simplifier=None))
    assert manifest.weights["kind"] == "pruned" and manifest.weights["widths"] == result.widths
    assert manifest.verify["top1_agreement"] == 1.0
    assert manifest.accuracy["torch"] == pytest.approx(result.accuracy["fine_tuned"]["test"], abs=1e-5)
    assert manifest.predicted["latency_ms"] == pytest.approx(result.predicted["latency_ms"])
    with pytest.raises(ConfigError, match="carries its own fine-tuned weights"):
        export_prune_result(path, tmp_path / "x", ExportOptions(supernet=supernet))

    weights = path.with_suffix(".npz")
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ConfigError, match="do not match its checksum"):
        pruned_model(path)
    assert not (tmp_path / "x").exists()


def test_evolution_under_a_tight_budget_starts_from_feasible_prunings(supernet: Path) -> None:
    """Random prunings rarely meet a tight budget; evolution's first population holds the uniform pruning and the
    smallest one, and infeasible candidates are not built (accuracy NaN, reward -inf)."""
    latency = predictor_latency(PRUNING, LutSumPredictor(_macs_table(PRUNING)), what="synthetic")
    smallest = float(latency(np.array([[2] * PRUNING.n_blocks]))[0])
    full = float(latency(np.array([[8] * PRUNING.n_blocks]))[0])
    target = smallest + 0.15 * (full - smallest)
    result, _ = prune(OFA, ARCH, supernet, latency, target_ms=target, strategy="evolution", episodes=6,
                      finetune_epochs=0, data=DATA)
    assert result.predicted["latency_ms"] <= target
    assert result.accuracy["searched"]["val"] > 0


def test_an_interrupted_pruning_resumes_to_the_same_result(supernet: Path, tmp_path: Path) -> None:
    from tailorkit.search.supernet import CheckpointError

    latency = predictor_latency(PRUNING, LutSumPredictor(_macs_table(PRUNING)), what="synthetic")
    target = float(latency(np.array([[5] * PRUNING.n_blocks]))[0])
    kw = {"target_ms": target, "finetune_epochs": 0, "data": DATA, "options": {"hidden": 16, "warmup": 4}}
    whole, _ = prune(OFA, ARCH, supernet, latency, episodes=8, **kw)
    ckpt = tmp_path / "prune.npz"
    prune(OFA, ARCH, supernet, latency, episodes=4, checkpoint=ckpt, **kw)  # "killed" after the warm-up
    resumed, _ = prune(OFA, ARCH, supernet, latency, episodes=8, checkpoint=ckpt, **kw)
    assert resumed.keep_eighths == whole.keep_eighths and resumed.curve == whole.curve
    with pytest.raises(CheckpointError, match="different search"):
        prune(OFA, ARCH, supernet, latency, episodes=12, checkpoint=ckpt, **{**kw, "target_ms": target * 0.9})


def test_prune_refuses_bad_budgets(supernet: Path) -> None:
    latency = predictor_latency(PRUNING, LutSumPredictor(_macs_table(PRUNING)), what="synthetic")
    smallest = float(latency(np.array([[2] * PRUNING.n_blocks]))[0])
    with pytest.raises(ConfigError, match="below the fastest pruning"):
        prune(OFA, ARCH, supernet, latency, target_ms=0.5 * smallest, episodes=2, data=DATA)
    with pytest.raises(ConfigError, match="positive number of ms"):
        prune(OFA, ARCH, supernet, latency, target_ms=-1.0, episodes=2, data=DATA)
    with pytest.raises(ConfigError, match="episodes must be >= 1"):
        prune(OFA, ARCH, supernet, latency, target_ms=smallest * 2, episodes=0, data=DATA)
    wide = OFAMobileNetV3Space(width=1.2)
    wide_arch = wide.arch_from_dict({**OFA.arch_to_dict(ARCH)})
    wide_pruning = PruningSpace(wide, wide_arch)
    wide_latency = predictor_latency(wide_pruning, LutSumPredictor(_macs_table(wide_pruning)), what="synthetic")
    with pytest.raises(ConfigError, match="is ofa-mbv3 width 1.0; the subnet is ofa-mbv3 width 1.2"):
        prune(wide, wide_arch, supernet, wide_latency, target_ms=1e9, episodes=2, data=DATA)


def test_a_kernel_level_predictor_prices_every_pruned_width() -> None:
    from tailorkit.predictors import KernelPredictor

    table = _macs_table(PRUNING)
    kernel = KernelPredictor(bags=1, n_estimators=40).fit_table(table)
    latency = predictor_latency(PRUNING, kernel, what="kernel")
    widths = np.array([[k] * PRUNING.n_blocks for k in KEEP_EIGHTHS])
    predicted = latency(widths)
    assert (predicted > 0).all() and predicted[-1] > predicted[0]  # wider costs more
    exact = predictor_latency(PRUNING, LutSumPredictor(table), what="table")(widths)
    assert np.all(np.abs(predicted / exact - 1) < 0.5)


def test_cli_prune_then_export(supernet: Path, tmp_path: Path) -> None:
    # priced with the 10-class head the pruned network ships with: a table with only ImageNet's is refused
    imagenet_only = LutSumPredictor(_macs_table(PRUNING)).save(tmp_path / "imagenet.tlp")
    args = ["--supernet", str(supernet), "--arch", json.dumps(OFA.arch_to_dict(ARCH)), "--latency-ratio", "0.7",
            "--episodes", "8", "--finetune-epochs", "0"]
    out = tmp_path / "r" / "pruned.json"
    refused = run_cli("prune", *args, "--predictor", str(imagenet_only), "-o", str(out))
    assert refused.returncode == 1 and "lacks the 10-class classifier" in refused.stderr
    assert "tailor table build --classes 10" in refused.stderr and not out.exists()
    predictor = LutSumPredictor(_macs_table(PruningSpace(OFA.with_classes(10), ARCH))).save(tmp_path / "lut.tlp")
    res = run_cli("prune", *args, "--predictor", str(predictor), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "uniform pruning at the same budget" in res.stdout and out.with_suffix(".npz").is_file()
    saved = json.loads(out.read_text())
    assert saved["schema"] == "tailorkit.prune-result" and saved["episodes"] == 8
    exported = run_cli("export", str(out), "--simplify", "none", "-o", str(tmp_path / "onnx"))
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert manifest["weights"]["kind"] == "pruned" and manifest["source"]["kind"] == "prune-result"
    refused = run_cli("export", str(out), "--refit", "--device", "cpu", "-o", str(tmp_path / "x"))
    assert refused.returncode == 1 and "a pruned network is not one of its archs" in refused.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--latency-ms", "1"], "--result SEARCH.json or --arch"),
    (["--arch", "{}", "--latency-ms", "1", "--predictor", "p.tlp", "--device", "cpu"], "--predictor FILE.tlp, or"),
    (["--arch", "{}", "--predictor", "p.tlp"], "--latency-ms or --latency-ratio"),
    (["--arch", "{}", "--predictor", "p.tlp", "--latency-ratio", "1.5"], "must be in \\(0, 1\\]"),
    (["--arch", "{}", "--predictor", "p.tlp", "--latency-ms", "1", "--strategy", "nsga2"], "unknown pruning strategy"),
])
def test_cli_prune_bad_input_is_one_error_line(args: list[str], message: str, tmp_path: Path) -> None:
    res = run_cli("prune", "--supernet", str(tmp_path), "-o", str(tmp_path / "p.json"), *args)
    assert res.returncode == 1
    assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert __import__("re").search(message, res.stderr)


def test_cli_prune_refuses_another_space_or_width_before_any_work(supernet: Path, tmp_path: Path) -> None:
    arch = json.dumps(OFA.arch_to_dict(ARCH))
    res = run_cli("prune", "--supernet", str(supernet), "--arch", arch, "--width", "1.2", "--device", "cpu",
                  "--latency-ratio", "0.5", "-o", str(tmp_path / "p.json"))
    assert res.returncode == 1 and "width 1.0; the subnet is ofa-mbv3 width 1.2" in res.stderr
    nb = SearchResult(space={"name": "nb201"}, strategy={"name": "random"}, reward={"name": "mnasnet-soft"},
                      budget=1, seed=0, evaluations=1, resumed_from=0, seconds=0.1, latency_source="help",
                      accuracy_source=None, best={"arch": {"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
                                                  "reward": 1.0, "latency_ms": 1.0, "accuracy": None},
                      pareto=[], curve=[])
    result = nb.save(tmp_path / "nb.json")
    res = run_cli("prune", "--supernet", str(supernet), "--result", str(result), "--predictor", "x.tlp",
                  "--latency-ratio", "0.5", "-o", str(tmp_path / "p.json"))
    assert res.returncode == 1 and "pruning works on ofa-mbv3 subnets" in res.stderr
