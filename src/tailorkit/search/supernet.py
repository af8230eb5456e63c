"""Training weight-sharing supernets on real data that ships with scikit-learn: the digits (1 797 8×8 images of
10 classes) — OFA-MobileNetV3 with progressive shrinking, Single-Path-One-Shot with uniform path sampling —
with checkpoints after every epoch and exact resume.

Digits are 8×8; an arch's resolution r (128–224) is scaled down to r / 8 (16–28 px, bilinear upsampling) so a
training run fits two CPU cores in minutes, while the architecture — and so its latency-table ops at r — stays
OFA's. Two costs of that scale, stated: pairs of neighbouring resolutions (128 and 132) see the same input
size, and from the third stage on the feature maps are 1×1 or 2×2, where a 7×7 kernel sees little more than
a 3×3 — the elastic-kernel phase has less to learn than on ImageNet. The split is fixed (stratified, seed 0):
1 257 train, 270 validation, 270 test.

Progressive shrinking (Cai et al., 2020), as phases over the epochs: the largest subnet only; then elastic
kernel; then elastic depth; then elastic expand ratio, after sorting channels by importance. Every phase
samples resolutions. Each step trains the largest subnet, ``subnets_per_step - 1`` sampled ones and (``sandwich``,
BigNAS's rule) the phase's smallest on the same batch and sums their losses; with ``subnets_per_step = 1`` only
the largest is trained. The subnets other than the largest also learn the largest's predictions on the batch
(in-place distillation, weight ``distill``: OFA distils from a separately trained full network, BigNAS from the
largest in the same step). Both matter on digits: after 16 epochs without them the smallest subnet run by the
supernet reaches 82 % validation accuracy, with them 98.5 %, as good as the largest (``benchmarks/supernet.py``).

SPOS (``space="spos"`` or ``"spos-reduced"``) trains ``subnets_per_step`` uniformly sampled paths per step (unit,
channel scale and, in a mixed-precision space, bit width per block) at its one resolution (224 → 28 px), after
a warm-up (``warmup_epochs``): the first epochs train only the k7 unit of every block, at sampled widths, and
then every other unit inherits its weights (:meth:`SPOSSupernet.inherit_units`). From independent random
weights, uniform paths across the full 20 blocks stay at chance on digits for a thousand steps — every path is
a different random function, and the head cannot follow — while a fixed path, or one mixing only widths, learns
in tens of steps. Starting all units from one trained unit keeps the paths' functions close enough for
uniform sampling to take over; it also lifts the reduced 5-block body (``benchmarks/spos.py``, README).
``warmup_epochs=0`` is SPOS as published.

Batch-norm statistics are shared by all subnets, so they describe whichever subnet was last recalibrated:
:func:`evaluate_arch` recalibrates for its arch (and leaves the statistics so), and :func:`calibrated_subnet`
extracts a subnet after recalibrating — extracting without either copies another subnet's statistics.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.core.errors import CheckpointError, ConfigError
from tailorkit.spaces.ofa_mbv3 import (
    DEPTHS,
    EXPANDS,
    KERNELS,
    MAX_DEPTH,
    N_BLOCKS,
    RESOLUTIONS,
    OFAArch,
    OFAMobileNetV3Space,
)
from tailorkit.spaces.ofa_supernet import OFASupernet, recalibrate_bn
from tailorkit.spaces.spos import BLOCKS as SPOS_BLOCKS
from tailorkit.spaces.spos import SCALES as SPOS_SCALES
from tailorkit.spaces.spos import SPOSArch, SPOSReducedSpace, SPOSSpace
from tailorkit.spaces.spos_supernet import SPOSSupernet

log = logging.getLogger(__name__)

RESOLUTION_SCALE = 8
PHASES = ("largest", "kernel", "depth", "expand")
CHECKPOINT = "supernet.pt"
CONFIG = "config.json"


# ------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DigitsSplits:
    """Images as (N, 1, 8, 8) floats standardised with the training mean and std; labels as int64."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {name!r}")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")


def load_digits_splits() -> DigitsSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.images.astype(np.float32)
    y = data.target.astype(np.int64)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=540, stratify=y, random_state=0)
    val, test = train_test_split(rest, test_size=270, stratify=y[rest], random_state=0)
    mean, std = float(x[train].mean()), float(x[train].std())

    def t(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy((x[rows] - mean) / std)[:, None], torch.from_numpy(y[rows])

    (a, b), (c, d), (e, f) = t(train), t(val), t(test)
    return DigitsSplits(a, b, c, d, e, f)


def at_resolution(x: torch.Tensor, r: int) -> torch.Tensor:
    """Digits as the 3-channel input an OFA subnet at resolution ``r`` sees (r / 4 pixels square)."""
    size = r // RESOLUTION_SCALE
    up = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    # channels-last makes oneDNN's depthwise convolutions (forward and backward) several times faster on CPU
    return up.contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------ sampling


def phase_of(epoch: int, epochs: int) -> str:
    """Equal shares of the epochs per phase, in order (fewer epochs than phases: the later phases)."""
    return PHASES[min(len(PHASES) - 1, max(0, len(PHASES) - epochs) + epoch * len(PHASES) // max(epochs, 1))]


def sample_arch(phase: str, gen: torch.Generator) -> OFAArch:
    def pick(choices: tuple[int, ...], n: int) -> tuple[int, ...]:
        idx = torch.randint(len(choices), (n,), generator=gen).tolist()
        return tuple(choices[i] for i in idx)

    level = PHASES.index(phase)
    ks = pick(KERNELS, N_BLOCKS) if level >= 1 else (max(KERNELS),) * N_BLOCKS
    stages = N_BLOCKS // MAX_DEPTH
    d = pick(DEPTHS, stages) if level >= 2 else (MAX_DEPTH,) * stages
    e = pick(EXPANDS, N_BLOCKS) if level >= 3 else (max(EXPANDS),) * N_BLOCKS
    return OFAArch(ks=ks, e=e, d=d, r=pick(RESOLUTIONS, 1)[0])


# ------------------------------------------------------------------------------------------ supernets

SUPERNET_SPACES = ("ofa-mbv3", "spos", "spos-reduced")
Supernet = OFASupernet | SPOSSupernet


def make_supernet(config: SupernetConfig) -> Supernet:
    if config.space in ("spos", "spos-reduced"):
        # SPOS runs at one resolution; 224 (its ImageNet size) becomes 28-px digits like OFA's largest
        layout = SPOSSpace if config.space == "spos" else SPOSReducedSpace
        return SPOSSupernet(layout(width=config.width), num_classes=10)
    return OFASupernet(OFAMobileNetV3Space(width=config.width), num_classes=10)


def resolution_of(net: Supernet, arch: Any) -> int:
    """The resolution an arch runs at: OFA archs carry theirs, SPOS runs at its space's."""
    return int(arch.r) if isinstance(arch, OFAArch) else int(net.space.resolution)


def phase_smallest(phase: str, r: int) -> OFAArch:
    """The smallest subnet a phase samples: only the dimensions the phase has made elastic are at their minimum."""
    level = PHASES.index(phase)
    return OFAArch(ks=(min(KERNELS) if level >= 1 else max(KERNELS),) * N_BLOCKS,
                   e=(min(EXPANDS) if level >= 3 else max(EXPANDS),) * N_BLOCKS,
                   d=(min(DEPTHS) if level >= 2 else MAX_DEPTH,) * (N_BLOCKS // MAX_DEPTH), r=r)


def training_paths(net: Supernet, config: SupernetConfig, phase: str, gen: torch.Generator) -> list[Any]:
    """The subnets one step trains. OFA: the largest (at a sampled resolution) and ``subnets_per_step - 1``
    samples of the phase — with ``sandwich``, and samples at all, also the phase's smallest (at the lowest
    resolution). SPOS: ``subnets_per_step`` paths drawn uniformly (its defining choice), during the warm-up with
    the k7 unit in every block."""
    if isinstance(net, SPOSSupernet):
        space = net.space
        n = space.n_blocks

        def path() -> SPOSArch:  # the warm-up keeps the k7 unit everywhere; widths and bits are drawn as usual
            units = space.largest().blocks if phase == "warmup" else \
                tuple(torch.randint(len(SPOS_BLOCKS), (n,), generator=gen).tolist())
            return SPOSArch(units, tuple(torch.randint(len(SPOS_SCALES), (n,), generator=gen).tolist()),
                            tuple(space.bits[i] for i in torch.randint(len(space.bits), (n,), generator=gen).tolist())
                            if space.bits else ())

        return [path() for _ in range(config.subnets_per_step)]
    largest = OFAArch(ks=(7,) * N_BLOCKS, e=(6,) * N_BLOCKS, d=(4,) * 5, r=sample_arch(phase, gen).r)
    samples = [sample_arch(phase, gen) for _ in range(config.subnets_per_step - 1)]
    return [largest] + ([phase_smallest(phase, min(RESOLUTIONS))] if config.sandwich and samples else []) + samples


# ------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class SupernetConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 3e-5
    subnets_per_step: int = 2
    width: float = 1.0
    seed: int = 0
    steps_per_epoch: int | None = None  # None: one pass over the training images; fewer for smoke runs
    space: str = "ofa-mbv3"
    # OFA-MobileNetV3 only (SPOS samples its paths uniformly):
    sandwich: bool = True  # steps that sample subnets also train the phase's smallest (BigNAS)
    distill: float = 1.0  # weight of in-place distillation: subnets also learn the largest's predictions
    # SPOS only: the first epochs train the k7 unit of every slot (widths sampled), then all units inherit its
    # weights and paths are drawn uniformly. None: half the epochs, at most 5 (~100 steps: the warm-up path
    # must have learnt something to pass on)
    warmup_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.space not in SUPERNET_SPACES:
            raise ConfigError(f"no supernet for space {self.space!r}; available: {', '.join(SUPERNET_SPACES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.subnets_per_step < 1:
            raise ConfigError("epochs, batch_size and subnets_per_step must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError("steps_per_epoch must be >= 1")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError("lr must be > 0 and weight_decay >= 0")
        if not self.distill >= 0:
            raise ConfigError("distill must be >= 0")
        if self.space != "ofa-mbv3":  # SPOS draws its paths uniformly: neither applies, so neither is recorded
            object.__setattr__(self, "sandwich", False)
            object.__setattr__(self, "distill", 0.0)
        warmup = self.warmup_epochs
        if warmup is None:
            warmup = 0 if self.space == "ofa-mbv3" else min(5, self.epochs // 2)
        elif self.space == "ofa-mbv3" and warmup:
            raise ConfigError("warmup_epochs is for SPOS supernets (OFA has progressive shrinking's phases)")
        elif not 0 <= warmup < self.epochs:
            raise ConfigError(f"warmup_epochs must be in 0..epochs-1 (epochs={self.epochs}), got {warmup}")
        object.__setattr__(self, "warmup_epochs", warmup)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    phase: str
    loss: float
    val_largest: float  # validation accuracy of the largest subnet (after BN recalibration)
    val_smallest: float
    seconds: float


@dataclass
class TrainingState:
    epochs_done: int = 0
    sorted_channels: bool = False  # OFA: channels sorted (expand phase) / SPOS: units inherited (after warm-up)
    history: list[dict[str, Any]] = field(default_factory=list)


def train_supernet(config: SupernetConfig, ckpt_dir: str | Path, *, data: DigitsSplits | None = None,
                   progress: Callable[[int, int, EpochReport | None], None] | None = None) -> Supernet:
    """Train (or resume training of) the supernet in ``ckpt_dir``; a checkpoint is written atomically after
    every epoch, so a killed run resumes at the last finished epoch. ``progress(step, steps, report)`` is
    called after every step (report None) and every epoch."""
    import time

    ckpt = Path(ckpt_dir)
    resuming = (ckpt / CHECKPOINT).exists()
    if resuming:
        _check_config(ckpt, config)  # before loading anything: a mismatch is an instant error
    torch.manual_seed(config.seed)
    net = make_supernet(config)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                          weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    state = TrainingState()
    if resuming:
        state = _load_checkpoint(ckpt, config, net, opt, gen)
        log.info("resuming at epoch %d of %d", state.epochs_done, config.epochs)
        if state.epochs_done >= config.epochs:
            return net
    else:
        _write_config(ckpt, config)
    data = data or load_digits_splits()
    n = data.train_x.shape[0]
    steps_per_epoch = min(math.ceil(n / config.batch_size), config.steps_per_epoch or n)
    total = steps_per_epoch * config.epochs
    for epoch in range(state.epochs_done, config.epochs):
        t0 = time.perf_counter()
        phase = phase_of(epoch, config.epochs) if config.space == "ofa-mbv3" else \
            "warmup" if epoch < (config.warmup_epochs or 0) else "uniform"
        if phase == "expand" and not state.sorted_channels:
            net.sort_channels()
            # the momentum buffers are in the old channel order; OFA starts each phase with a fresh optimizer
            opt.state.clear()
            state.sorted_channels = True
        if phase == "uniform" and config.warmup_epochs and not state.sorted_channels:
            assert isinstance(net, SPOSSupernet)
            net.inherit_units()
            opt.state.clear()  # the copied units' momentum would be another unit's
            state.sorted_channels = True
        net.train()
        order = torch.randperm(n, generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            lr = 0.5 * config.lr * (1 + math.cos(math.pi * (epoch * steps_per_epoch + step) / total))
            for group in opt.param_groups:
                group["lr"] = lr
            rows = order[step * config.batch_size:(step + 1) * config.batch_size]
            if rows.numel() < 2:  # batch norm needs two samples; 1 × 1 feature maps leave nothing else
                continue
            x, y = data.train_x[rows], data.train_y[rows]
            opt.zero_grad()
            loss_sum = 0.0
            archs = training_paths(net, config, phase, gen)
            teacher: torch.Tensor | None = None
            for arch in archs:
                net.set_arch(arch)
                logits = net(at_resolution(x, resolution_of(net, arch)))
                loss = path_loss(logits, y, teacher, config.distill)
                if teacher is None and config.distill:  # the first path is the largest (SPOS configs: distill 0)
                    teacher = F.log_softmax(logits.detach(), 1)
                loss.backward()
                loss_sum += loss.item()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            losses.append(loss_sum / len(archs))
            if progress:
                progress(epoch * steps_per_epoch + step + 1, total, None)
        space = net.space
        report = EpochReport(epoch + 1, phase, float(np.mean(losses)),
                             evaluate_arch(net, data, space.largest(), "val"),
                             evaluate_arch(net, data, space.smallest(), "val"), time.perf_counter() - t0)
        state.epochs_done = epoch + 1
        state.history.append(asdict(report))
        _save_checkpoint(ckpt, net, opt, gen, state)
        log.info("epoch %d (%s): loss %.3f, val largest %.3f smallest %.3f", report.epoch, phase, report.loss,
                 report.val_largest, report.val_smallest)
        if progress:
            progress((epoch + 1) * steps_per_epoch, total, report)
    return net


def path_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None,
              distill: float) -> torch.Tensor:
    """Cross-entropy with the labels, plus ``distill`` × KL(teacher ‖ path) when a teacher's log-probabilities
    are given (in-place distillation from the largest subnet)."""
    loss = F.cross_entropy(logits, labels)
    if teacher is None or not distill:
        return loss
    return loss + distill * F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean", log_target=True)


def calibrated_subnet(net: Supernet, data: DigitsSplits, arch: Any,
                      calibration_batches: int = 8, batch_size: int = 128) -> torch.nn.Module:
    """The standalone subnet for ``arch`` (``space.build(arch)`` with the supernet's weights), with batch-norm
    statistics re-estimated for it on the training images."""
    _recalibrate(net, data, arch, calibration_batches, batch_size)
    return net.extract(arch)


def _recalibrate(net: Supernet, data: DigitsSplits, arch: Any, batches: int, batch_size: int) -> None:
    net.set_arch(arch)
    calib = [at_resolution(data.train_x[i:i + batch_size], resolution_of(net, arch))
             for i in range(0, min(len(data.train_x), batches * batch_size), batch_size)]
    recalibrate_bn(net, calib)


@torch.no_grad()
def evaluate_arch(net: Supernet, data: DigitsSplits, arch: Any, split: str = "test",
                  calibration_batches: int = 8, batch_size: int = 128) -> float:
    """Accuracy of ``arch`` run by the supernet on ``split``, after re-estimating its batch-norm statistics on
    training images (the same images every time, so the result is deterministic)."""
    _recalibrate(net, data, arch, calibration_batches, batch_size)
    return accuracy(net, data, resolution_of(net, arch), split)


def train_subnet(model: torch.nn.Module, data: DigitsSplits, r: int, *, epochs: int, lr: float = 0.05,
                 batch_size: int = 64, seed: int = 0) -> torch.nn.Module:
    """Train a standalone network (an extracted subnet to fine-tune, or a fresh one) at resolution ``r``:
    SGD with Nesterov momentum and a cosine schedule, the supernet's recipe."""
    gen = torch.Generator().manual_seed(seed)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-5)
    n = len(data.train_y)
    steps = math.ceil(n / batch_size)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * (epoch * steps + step) / (epochs * steps)))
            rows = order[step * batch_size:(step + 1) * batch_size]
            if rows.numel() < 2:  # batch norm needs two samples
                continue
            opt.zero_grad()
            F.cross_entropy(model(at_resolution(data.train_x[rows], r)), data.train_y[rows]).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: DigitsSplits, r: int, split: str = "test") -> float:
    x, y = data.split(split)
    was = model.training
    model.eval()
    correct = sum(int((model(at_resolution(x[i:i + 256], r)).argmax(1) == y[i:i + 256]).sum())
                  for i in range(0, len(y), 256))
    model.train(was)
    return correct / len(y)


# ------------------------------------------------------------------------------------------ checkpoints


def _write_config(ckpt: Path, config: SupernetConfig) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / CONFIG).write_text(json.dumps(asdict(config), indent=1))


def read_config(ckpt_dir: str | Path) -> SupernetConfig:
    path = Path(ckpt_dir) / CONFIG
    try:
        raw = json.loads(path.read_text())
        if isinstance(raw, dict):  # written before these settings existed: trained without them
            raw.setdefault("sandwich", False)
            raw.setdefault("distill", 0.0)
            raw.setdefault("warmup_epochs", 0)
        return SupernetConfig(**raw)
    except FileNotFoundError:
        raise CheckpointError(f"{str(ckpt_dir)!r} holds no supernet checkpoint ({CONFIG} is missing)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a supernet config: {exc}") from None


def _save_checkpoint(ckpt: Path, net: Supernet, opt: torch.optim.Optimizer, gen: torch.Generator,
                     state: TrainingState) -> None:
    tmp = ckpt / f".{CHECKPOINT}.tmp"
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "rng": gen.get_state(),
                "epochs_done": state.epochs_done, "sorted_channels": state.sorted_channels,
                "history": json.dumps(state.history)}, tmp)
    os.replace(tmp, ckpt / CHECKPOINT)


def _read_checkpoint(ckpt: Path) -> dict[str, Any]:
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled objects
        return torch.load(ckpt / CHECKPOINT, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{str(ckpt)!r} holds no supernet checkpoint") from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"{str(ckpt / CHECKPOINT)!r} is corrupt or not a supernet checkpoint "
                              f"({type(exc).__name__})") from None


def _check_config(ckpt: Path, config: SupernetConfig) -> None:
    stored = read_config(ckpt)
    if stored != config:
        raise CheckpointError(f"{str(ckpt)!r} was trained with {asdict(stored)}, not {asdict(config)}; use "
                              "another folder or the same settings")


def _load_checkpoint(ckpt: Path, config: SupernetConfig, net: Supernet, opt: torch.optim.Optimizer,
                     gen: torch.Generator) -> TrainingState:
    _check_config(ckpt, config)
    blob = _read_checkpoint(ckpt)
    try:
        net.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        gen.set_state(blob["rng"])
        return TrainingState(int(blob["epochs_done"]), bool(blob["sorted_channels"]), json.loads(blob["history"]))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt / CHECKPOINT)!r} does not fit this supernet: {exc}") from None


def load_supernet(ckpt_dir: str | Path) -> tuple[Supernet, SupernetConfig, list[dict[str, Any]]]:
    """The trained supernet of a checkpoint folder, its config and its per-epoch history."""
    ckpt = Path(ckpt_dir)
    config = read_config(ckpt)
    net = make_supernet(config)
    blob = _read_checkpoint(ckpt)
    try:
        net.load_state_dict(blob["model"])
        history = json.loads(blob["history"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt / CHECKPOINT)!r} does not fit this supernet: {exc}") from None
    return net.eval(), config, history
