"""The OFA-MobileNetV3 supernet: elastic subnets, extraction, channel sorting, training on digits, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tailorkit.core.errors import ConfigError
from tailorkit.search.supernet import (
    CheckpointError,
    SupernetConfig,
    at_resolution,
    evaluate_arch,
    load_digits_splits,
    load_supernet,
    phase_of,
    sample_arch,
    train_supernet,
)
from tailorkit.spaces import OFAMobileNetV3Space, SPOSSpace
from tailorkit.spaces.ofa_supernet import OFASupernet, recalibrate_bn

DATA = load_digits_splits()


def test_digits_split_is_fixed_and_stratified() -> None:
    assert (len(DATA.train_y), len(DATA.val_y), len(DATA.test_y)) == (1257, 270, 270)
    assert set(DATA.test_y.tolist()) == set(range(10)) and np.bincount(DATA.test_y.numpy()).min() >= 25
    again = load_digits_splits()
    assert torch.equal(again.test_x, DATA.test_x)
    assert at_resolution(DATA.test_x[:2], 224).shape == (2, 3, 28, 28)


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_extracted_subnet_computes_what_the_supernet_computes(width: float) -> None:
    torch.manual_seed(0)
    space = OFAMobileNetV3Space(width=width)
    net = OFASupernet(space)
    with torch.no_grad():  # non-trivial kernel transforms and BN statistics, so the test can tell them apart
        for block in net.blocks:
            block.transform_5.add_(0.05 * torch.randn(25, 25))
            block.transform_3.add_(0.05 * torch.randn(9, 9))
    rng = np.random.default_rng(1)
    for arch in [space.largest(224), space.smallest(128)] + [space.sample(rng) for _ in range(3)]:
        net.set_arch(arch)
        recalibrate_bn(net, [at_resolution(DATA.train_x[:64], arch.r)])
        net.eval()
        x = at_resolution(DATA.val_x[:32], arch.r)
        expected = net(x)
        sub = net.extract(arch)
        assert [type(m).__name__ for m in sub.children()][:2] == ["ConvBNAct", "MBConv"]
        assert len(list(sub.children())) == len(space.ops(arch))  # the very modules the latency tables time
        torch.testing.assert_close(sub(x), expected, rtol=1e-4, atol=1e-5)


def test_channel_sorting_keeps_the_largest_subnet_the_same_function() -> None:
    torch.manual_seed(0)
    net = OFASupernet(OFAMobileNetV3Space())
    arch = net.space.largest(160)
    net.set_arch(arch)
    recalibrate_bn(net, [at_resolution(DATA.train_x[:64], 160)])
    net.eval()
    x = at_resolution(DATA.val_x[:16], 160)
    before = net(x)
    order_before = net.blocks[3].project.weight.abs().sum(dim=(0, 2, 3))
    net.sort_channels()
    after_norms = net.blocks[3].project.weight.abs().sum(dim=(0, 2, 3))
    assert bool((after_norms[:-1] >= after_norms[1:]).all()) and not torch.equal(order_before, after_norms)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)


def test_progressive_shrinking_schedule() -> None:
    assert [phase_of(e, 8) for e in range(8)] == ["largest"] * 2 + ["kernel"] * 2 + ["depth"] * 2 + ["expand"] * 2
    assert [phase_of(e, 2) for e in range(2)] == ["depth", "expand"]
    gen = torch.Generator().manual_seed(0)
    largest = sample_arch("largest", gen)
    assert set(largest.ks) == {7} and set(largest.e) == {6} and set(largest.d) == {4}
    kernel = [sample_arch("kernel", gen) for _ in range(5)]
    assert {k for a in kernel for k in a.ks} == {3, 5, 7} and {e for a in kernel for e in a.e} == {6}
    expand = [sample_arch("expand", gen) for _ in range(5)]
    assert {e for a in expand for e in a.e} == {3, 4, 6} and {d for a in expand for d in a.d} == {2, 3, 4}


def test_short_training_learns_and_resumes_after_a_kill(tmp_path: Path) -> None:
    config = SupernetConfig(epochs=2, batch_size=64, steps_per_epoch=12, subnets_per_step=1, seed=3)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(step: int, total: int, report: object) -> None:
        if report is not None:
            raise Killed

    with pytest.raises(Killed):
        train_supernet(config, tmp_path / "a", data=DATA, progress=kill_after_first_epoch)
    _, _, history = load_supernet(tmp_path / "a")
    assert len(history) == 1
    resumed = train_supernet(config, tmp_path / "a", data=DATA)
    straight = train_supernet(config, tmp_path / "b", data=DATA)
    for (name, a), b in zip(resumed.state_dict().items(), straight.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)  # resume is exact: same weights as one uninterrupted run
    net, _, history = load_supernet(tmp_path / "a")
    assert [h["epoch"] for h in history] == [1, 2]
    accuracy = evaluate_arch(net, DATA, net.space.largest(160), "val")
    assert accuracy > 0.3  # 10 classes: chance is 0.1
    with pytest.raises(CheckpointError, match="was trained with"):
        train_supernet(SupernetConfig(epochs=3, steps_per_epoch=12, subnets_per_step=1, seed=3), tmp_path / "a",
                       data=DATA)
    (tmp_path / "a" / "supernet.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_supernet(tmp_path / "a")
    with pytest.raises(CheckpointError, match="no supernet checkpoint"):
        load_supernet(tmp_path / "missing")


def test_sandwich_steps_train_the_phase_smallest_and_distil_from_the_largest(tmp_path: Path) -> None:
    import json

    import torch.nn.functional as F

    from tailorkit.search.supernet import make_supernet, path_loss, phase_smallest, read_config, training_paths

    gen = torch.Generator().manual_seed(0)
    config = SupernetConfig()
    space = OFAMobileNetV3Space()
    net = make_supernet(config)
    largest, smallest, sampled = training_paths(net, config, "expand", gen)
    assert largest == space.largest(largest.r) and smallest == space.smallest(128)
    assert sampled not in (largest, smallest)
    kernel = phase_smallest("kernel", 128)  # only the kernel is elastic yet
    assert set(kernel.ks) == {3} and set(kernel.e) == {6} and set(kernel.d) == {4}
    assert training_paths(net, config, "kernel", gen)[1] == kernel
    assert len(training_paths(net, SupernetConfig(sandwich=False), "expand", gen)) == 2
    assert len(training_paths(net, SupernetConfig(subnets_per_step=1), "expand", gen)) == 1  # nothing sampled
    logits, labels = torch.randn(8, 10), torch.randint(10, (8,))
    ce = F.cross_entropy(logits, labels)
    assert path_loss(logits, labels, None, 1.0) == ce
    torch.testing.assert_close(path_loss(logits, labels, F.log_softmax(logits, 1), 1.0), ce)  # agrees with teacher
    other = F.log_softmax(torch.randn(8, 10), 1)
    assert path_loss(logits, labels, other, 1.0) > ce and path_loss(logits, labels, other, 0.0) == ce
    with pytest.raises(ConfigError, match="distill"):
        SupernetConfig(distill=-1.0)
    # a checkpoint written before the two settings existed was trained without them, and resumes so
    (tmp_path / "old").mkdir()
    legacy = {k: v for k, v in SupernetConfig(space="spos").__dict__.items()
              if k not in ("sandwich", "distill", "warmup_epochs")}
    (tmp_path / "old" / "config.json").write_text(json.dumps(legacy))
    stored = read_config(tmp_path / "old")
    assert stored.sandwich is False and stored.distill == 0.0 and stored.warmup_epochs == 0
    spos = SupernetConfig(space="spos-reduced")  # uniform paths: the settings do not apply and are not recorded
    assert (spos.sandwich, spos.distill) == (False, 0.0)
    assert SupernetConfig().warmup_epochs == 0  # OFA has its own phases
    with pytest.raises(ConfigError, match="warmup_epochs is for SPOS"):
        SupernetConfig(warmup_epochs=2)
    with pytest.raises(ConfigError, match=r"warmup_epochs must be in 0\.\.epochs-1 \(epochs=3\), got 3"):
        SupernetConfig(space="spos", epochs=3, warmup_epochs=3)


def test_a_last_batch_of_one_image_is_skipped(tmp_path: Path) -> None:
    """1 257 training images in batches of 1 256 leave one image: batch norm cannot train on it."""
    config = SupernetConfig(epochs=1, batch_size=1256, subnets_per_step=1, seed=0)
    net = train_supernet(config, tmp_path / "c", data=DATA)
    assert load_supernet(tmp_path / "c")[2][0]["epoch"] == 1 and net is not None


def test_ofa_one_hot_encoding() -> None:
    space = OFAMobileNetV3Space()
    arch = space.smallest(132)
    x = OFAMobileNetV3Space.one_hot(space.to_array([arch]))
    assert x.shape == (1, 145)
    blocks = x[0, :120].reshape(20, 6)
    active = [j < 2 for _ in range(5) for j in range(4)]  # depth 2 in every stage
    np.testing.assert_array_equal(blocks.sum(axis=1), [2.0 if a else 0.0 for a in active])
    assert blocks[0, 0] == 1 and blocks[0, 3] == 1  # kernel 3 → first kernel column, expand 3 → first expand
    assert x[0, 120 + 1] == 1 and x[0, 120:].sum() == 1  # resolution 132 is the second choice


def test_accuracy_predictor_learns_a_smooth_accuracy_landscape() -> None:
    """Mechanics on a known target: accuracy rising with depth, kernel and expand, as trained subnets' do."""
    from tailorkit.predictors import evaluate
    from tailorkit.search.accuracy import fit_accuracy_predictor

    space = OFAMobileNetV3Space()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(400)]
    arr = space.to_array(archs)
    active = np.repeat(np.arange(4)[None, :], 5, 0).reshape(-1)[None, :] < np.repeat(arr[:, 40:45], 4, axis=1)
    score = (active * (arr[:, :20] / 7 + arr[:, 20:40] / 6)).sum(1) + arr[:, 45] / 224
    acc = 0.7 + 0.25 * (score - score.min()) / np.ptp(score)
    predictor = fit_accuracy_predictor(archs[:300], acc[:300], steps=1500)
    metrics = evaluate(acc[300:], predictor.predict(OFAMobileNetV3Space.one_hot(arr[300:])))
    assert metrics["spearman"] > 0.9 and metrics["mape"] < 3


def test_spos_extracted_path_computes_what_the_supernet_computes() -> None:
    from tailorkit.spaces import SPOSSpace
    from tailorkit.spaces.spos_supernet import SPOSSupernet

    torch.manual_seed(0)
    net = SPOSSupernet(SPOSSpace())
    rng = np.random.default_rng(3)
    for arch in [net.space.largest(), net.space.smallest(), net.space.sample(rng), net.space.sample(rng)]:
        evaluate_arch(net, DATA, arch, "val")  # recalibrates batch norm for the path
        net.eval()
        x = at_resolution(DATA.val_x[:16], 224)
        expected = net(x)
        sub = net.extract(arch)
        assert len(list(sub.children())) == len(net.space.ops(arch))
        torch.testing.assert_close(sub(x), expected, rtol=1e-4, atol=1e-5)


def test_spos_training_samples_uniform_paths_and_checkpoints(tmp_path: Path) -> None:
    from tailorkit.search.supernet import make_supernet, training_paths

    config = SupernetConfig(epochs=1, steps_per_epoch=2, subnets_per_step=3, space="spos", seed=1)
    net = make_supernet(config)
    gen = torch.Generator().manual_seed(0)
    paths = [p for _ in range(40) for p in training_paths(net, config, "uniform", gen)]
    assert len(paths) == 120
    units = np.array([p.blocks for p in paths])
    scales = np.array([p.channels for p in paths])
    assert set(units.ravel()) == {0, 1, 2, 3} and set(scales.ravel()) == set(range(10))
    assert abs(np.bincount(units.ravel()).min() / units.size - 0.25) < 0.05  # uniform over units
    train_supernet(config, tmp_path / "s", data=DATA)
    loaded, stored, history = load_supernet(tmp_path / "s")
    assert stored.space == "spos" and len(history) == 1 and type(loaded).__name__ == "SPOSSupernet"
    with pytest.raises(Exception, match="no supernet for space 'nb201'"):
        SupernetConfig(space="nb201")


def test_reduced_spos_supernet_learns_from_uniform_paths(tmp_path: Path) -> None:
    """A warm-up on the k7 units (a third of the epochs here), then SPOS's uniform paths, one per step: the
    5-block body learns, and random paths run by the supernet classify most validation digits (measured: 0.94–
    0.97; without the warm-up 0.6–0.8 after 20 epochs)."""
    config = SupernetConfig(space="spos-reduced", epochs=15, subnets_per_step=1, lr=0.1, seed=0)
    assert config.warmup_epochs == 5  # the default: half the epochs, at most 5
    net = train_supernet(config, tmp_path / "s", data=DATA)
    assert net.space.n_blocks == 5 and len(net.space.ops(net.space.largest())) == 5 + 4
    _, _, history = load_supernet(tmp_path / "s")
    assert [h["phase"] for h in history] == ["warmup"] * 5 + ["uniform"] * 10
    assert history[-1]["val_largest"] > 0.8 and history[-1]["val_smallest"] > 0.5  # ten classes: chance is 0.1
    rng = np.random.default_rng(0)
    paths = [net.space.sample(rng) for _ in range(4)]
    assert np.mean([evaluate_arch(net, DATA, arch, "val") for arch in paths]) > 0.6
    with pytest.raises(ConfigError, match="the arch has 5 blocks; spos has 20"):
        SPOSSpace().ops(paths[0])


def test_spos_warmup_trains_the_k7_units_then_every_unit_inherits_them() -> None:
    from tailorkit.search.supernet import make_supernet, training_paths
    from tailorkit.spaces.spos import BLOCKS, SPOSArch

    config = SupernetConfig(space="spos-reduced", epochs=4, seed=0)
    assert config.warmup_epochs == 2 and SupernetConfig(space="spos", epochs=20).warmup_epochs == 5
    assert SupernetConfig(space="spos", epochs=20, warmup_epochs=0).warmup_epochs == 0  # pure SPOS on request
    torch.manual_seed(0)
    net = make_supernet(config)
    gen = torch.Generator().manual_seed(0)
    warm = [p for _ in range(10) for p in training_paths(net, config, "warmup", gen)]
    k7 = BLOCKS.index("k7")
    assert all(set(p.blocks) == {k7} for p in warm) and len({p.channels for p in warm}) == len(warm)
    # k7 kernels that are zero outside their centre 3×3: after inheritance a k3 or k5 unit computes exactly
    # what the k7 unit computes, so any mix of them runs the k7 path's function
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (7, 7):
                m.weight[..., :2, :] = 0
                m.weight[..., 5:, :] = 0
                m.weight[..., :, :2] = 0
                m.weight[..., :, 5:] = 0
    largest = net.space.largest()
    x = torch.randn(16, 3, 28, 28)

    def run(blocks: tuple[int, ...]) -> torch.Tensor:
        net.set_arch(SPOSArch(blocks, largest.channels, largest.bits))
        return net(x)

    net.train()  # batch statistics: the comparison does not depend on running ones
    mixed = (0, 1, 2, 0, 1)
    reference = run(largest.blocks)
    assert not torch.allclose(run(mixed), reference, atol=1e-3)
    slot = next(s for s in net.slots if s.stride == 1)
    h = torch.randn(16, slot.cin, slot.h // 8, slot.h // 8)

    @torch.no_grad()
    def unit_similarity() -> float:  # of the main branches' outputs (the other half of the channels bypasses)
        outs = []
        for unit in (k7, BLOCKS.index("xception")):
            slot.unit, slot.mid = unit, slot.units[k7].main[0].out_channels
            outs.append(slot(h)[:, slot.cout // 2:].flatten())
        return float(torch.nn.functional.cosine_similarity(outs[0], outs[1], 0))

    before = unit_similarity()
    net.inherit_units()
    torch.testing.assert_close(run(mixed), reference)
    torch.testing.assert_close(run((0,) * 5), reference)
    # the xception unit's three depthwise + 1×1 pairs start near the k7 unit's function (exact up to batch
    # norm's per-channel affine maps, which its next layers mostly absorb)
    assert before < 0.5 and unit_similarity() > 0.95
