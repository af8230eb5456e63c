"""Channel pruning under a latency budget: AMC (He et al., ECCV 2018) on a trained OFA-MobileNetV3 subnet.

The prunable layers are the inverted-bottleneck blocks that expand (all but the first block): each keeps a share of
its middle channels — the width of the expand conv's outputs, the depthwise conv, the SE block and the project
conv's inputs — from ``KEEP_EIGHTHS`` / 8, rounded to a multiple of 8. The channels kept are the most important
ones by the L1 norm of the project conv's weights on them (OFA's criterion for its elastic width); the pruned block
is the very module a latency table measures for the op with the narrower ``expand``, with the kept weights copied
in. So a pruned network is a list of ordinary ops, and its latency is a table sum: every block at every width is
one op key, measured on the device (``tailor prune --device``, stored like any table) or predicted by a
kernel-level predictor.

The search is an ordinary search over one gene per prunable block (:class:`PruningSpace`): AMC's DDPG agent
(``ddpg`` in the strategies, with each block's shape as its state and the latency budget enforced by clamping
actions), or evolution, random search and the RL controller. A candidate's accuracy is the pruned network's digits
validation accuracy after batch-norm re-estimation, without fine-tuning (as in AMC's search); the winner is
fine-tuned and saved as a prune result: ``NAME.json`` (schema ``tailorkit.prune-result``) beside ``NAME.npz``
(its weights, plain arrays, never a pickle), which ``tailor export`` turns into a model file like a search result.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from tailorkit.core.documents import from_document, read_json_object, sha256_file
from tailorkit.core.errors import ConfigError, PredictorError
from tailorkit.core.records import OpSpec
from tailorkit.core.version import __version__
from tailorkit.search.objectives import LatencySource
from tailorkit.spaces.base import make_divisible
from tailorkit.spaces.blocks import MBConv, SqueezeExcite, build_network, build_op
from tailorkit.spaces.ofa_supernet import recalibrate_bn

log = logging.getLogger(__name__)
ModuleT = TypeVar("ModuleT", bound=nn.Module)

KEEP_EIGHTHS = (2, 3, 4, 5, 6, 7, 8)  # eighths of a block's middle channels a pruned block keeps
SCHEMA = "tailorkit.prune-result"
SCHEMA_VERSION = 1
CALIBRATION_BATCHES = 2
CALIBRATION_BATCH = 128


def kept_width(op: OpSpec, eighths: int) -> int:
    """Middle channels the block ``op`` keeps at ``eighths`` / 8: a multiple of 8, at least 8, at most its own,
    and never its input width (a block whose middle width equals its input has no expand conv: another op)."""
    mid, cin = op.expand, op.input_shape[-1]
    w = max(8, min(mid, make_divisible(mid * eighths / 8)))
    if w == cin:
        w = w + 8 if w + 8 <= mid else w - 8
    return w


# ------------------------------------------------------------------------------------------------- space


class PruningSpace:
    """The pruning decisions for one trained network: one gene per prunable block, its kept eighths. An "arch"
    of this space is the tuple of kept eighths; ``ops`` lists the pruned network's ops (keys match the tables of
    the base space, at its deployment resolution)."""

    buildable = False

    def __init__(self, base_space: Any, arch: Any, *, num_classes: int | None = None) -> None:
        """``num_classes``: price the network with that classifier instead of the space's own (the head the
        pruned network ships with)."""
        if base_space.name != "ofa-mbv3":
            raise ConfigError(f"pruning works on ofa-mbv3 subnets (inverted bottlenecks with a middle width), not "
                              f"{base_space.name!r}")
        if num_classes is not None:
            base_space = base_space.with_classes(num_classes)
        self.base_space, self.arch = base_space, arch
        self.name = "ofa-mbv3-pruning"
        self.base_ops = list(base_space.ops(arch))
        self.blocks = [i for i, op in enumerate(self.base_ops)
                       if op.op_type == "expanded_conv" and op.expand != op.input_shape[-1]]
        if not self.blocks:
            raise ConfigError("the subnet has no block with a middle width to prune")

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def gene_choices(self) -> list[tuple[int, ...]]:
        return [KEEP_EIGHTHS] * self.n_blocks

    def genes(self, archs: Sequence[Sequence[int]]) -> np.ndarray:
        return np.asarray([list(a) for a in archs], dtype=np.int64).reshape(-1, self.n_blocks)

    def from_genes(self, genes: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in row) for row in np.asarray(genes).reshape(-1, self.n_blocks)]

    def live_genes(self, genes: np.ndarray) -> np.ndarray:
        return np.ones(np.asarray(genes).reshape(-1, self.n_blocks).shape, dtype=bool)

    def arch_to_dict(self, keep: Sequence[int]) -> dict[str, Any]:
        return {"keep_eighths": [int(k) for k in keep], "widths": self.widths(keep)}

    def arch_to_json(self, keep: Sequence[int]) -> str:
        return json.dumps(self.arch_to_dict(keep))

    def check(self, keep: Sequence[int]) -> tuple[int, ...]:
        keep = tuple(int(k) for k in keep)
        if len(keep) != self.n_blocks:
            raise ConfigError(f"the pruning has {len(keep)} blocks; the subnet has {self.n_blocks} prunable blocks")
        bad = [k for k in keep if k not in KEEP_EIGHTHS]
        if bad:
            raise ConfigError(f"kept eighths must be among {list(KEEP_EIGHTHS)}, got {bad[0]}")
        return keep

    def widths(self, keep: Sequence[int]) -> list[int]:
        return [kept_width(self.base_ops[i], int(k)) for i, k in zip(self.blocks, keep, strict=True)]

    def pruned_ops(self, keep: Sequence[int], ops: Sequence[OpSpec] | None = None) -> list[OpSpec]:
        """``ops`` (the base subnet's, by default) with each prunable block narrowed to its kept width."""
        out = list(self.base_ops if ops is None else ops)
        for i, w in zip(self.blocks, self.widths(self.check(keep)), strict=True):
            out[i] = replace(out[i], expand=w)
        return out

    def grid_ops(self) -> list[OpSpec]:
        """Every op a pruning can use: the fixed ops and each prunable block at every kept width."""
        ops = {op.key: op for op in self.base_ops}
        for i in self.blocks:
            for k in KEEP_EIGHTHS:
                op = replace(self.base_ops[i], expand=kept_width(self.base_ops[i], k))
                ops[op.key] = op
        return list(ops.values())


# ----------------------------------------------------------------------------------------------- latency


class BlockLatency(LatencySource):
    """Latency of a pruning: the fixed ops' sum plus each block's entry at its kept width, through the latency
    source's linear correction ``a · Σ + b`` (a lookup table's calibration). Additive per block, which is what
    AMC's budget clamp needs (:meth:`per_block`)."""

    def __init__(self, space: PruningSpace, op_ms: Callable[[list[OpSpec]], np.ndarray], *, description: str,
                 scale: float = 1.0, offset: float = 0.0, device: str | None = None) -> None:
        grid = space.grid_ops()
        ms = dict(zip((op.key for op in grid), np.asarray(op_ms(grid), dtype=np.float64).tolist(), strict=True))
        bad = [k for k, v in ms.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise PredictorError(f"the latency source gave {ms[bad[0]]} ms for op {bad[0]!r}")
        blocks = set(space.blocks)
        self.fixed_ms = sum(ms[op.key] for i, op in enumerate(space.base_ops) if i not in blocks)
        self.matrix = np.array([[ms[replace(space.base_ops[i], expand=kept_width(space.base_ops[i], k)).key]
                                 for k in KEEP_EIGHTHS] for i in space.blocks])
        self.scale, self.offset = float(scale), float(offset)
        self.description, self.device = description, device
        self.calibration: dict[str, Any] | None = None

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return self.scale * self.table_sum(values) + self.offset

    def table_sum(self, values: np.ndarray) -> np.ndarray:
        """The uncorrected sum of the table entries of each pruning (rows of kept eighths)."""
        cols = np.asarray(values, dtype=np.int64).reshape(-1, self.matrix.shape[0]) - KEEP_EIGHTHS[0]
        return self.fixed_ms + self.matrix[np.arange(self.matrix.shape[0])[None, :], cols].sum(axis=1)

    def per_block(self) -> tuple[np.ndarray, float]:
        """(blocks × choices) latency in the corrected units and the fixed part: latency = fixed + Σ row entries."""
        return self.scale * self.matrix, self.scale * self.fixed_ms + self.offset


def predictor_latency(space: PruningSpace, predictor: Any, *, what: str) -> BlockLatency:
    """The pruning latencies from a fitted lookup-table or kernel-level predictor of the base space. A table
    lacking a pruned width is an error naming the op (measure the pruning's ops with ``tailor prune --device``,
    or use a kernel-level predictor, or a table built with interpolation)."""
    if predictor.space not in (None, space.base_space.name):
        raise PredictorError(f"{what} was trained for space {predictor.space!r}, not {space.base_space.name!r}")
    coef = getattr(predictor, "coef_", None)
    scale, offset = (float(coef[0]), float(coef[1])) if coef is not None and np.shape(coef) == (2,) else (1.0, 0.0)
    if predictor.kind == "kernel":
        return BlockLatency(space, predictor.predict_ops, description=f"{what} (kernel-level)",
                            device=predictor.device)
    if predictor.kind != "lut":
        raise PredictorError(f"{what} is a {predictor.kind} predictor; pruning needs per-op latencies: a lookup "
                             "table (lut) or a kernel-level predictor")
    table = predictor.table_
    kernel = getattr(predictor, "kernel_", None) if predictor.interpolate else None

    def op_ms(ops: list[OpSpec]) -> np.ndarray:
        missing = [op for op in ops if op.key not in table]
        if missing and kernel is None:
            if all(op.op_type == "Logits" for op in missing):
                classes = space.base_space.num_classes
                raise PredictorError(f"{what} lacks the {classes}-class classifier the pruned network is deployed "
                                     f"with ({missing[0].key!r}): `tailor table build --classes {classes}` measures "
                                     "it, or measure the pruning's ops with `tailor prune --device NAME`")
            raise PredictorError(f"{what} has no latency for op {missing[0].key!r} ({len(missing)} of the "
                                 f"pruning's {len(ops)} ops are missing): measure them with `tailor prune "
                                 "--device NAME`, or use a kernel-level predictor")
        filled = dict(zip((op.key for op in missing), (kernel.predict_ops(missing) * predictor.scale_for(
            [op.key for op in missing])).tolist(), strict=True)) if missing else {}
        return np.array([table.get(op.key, filled.get(op.key, np.nan)) for op in ops])

    return BlockLatency(space, op_ms, description=f"{what} (lookup table)", scale=scale, offset=offset,
                        device=predictor.device)


def measured_latency(space: PruningSpace, device: Any, store: Any, settings: Any,
                     progress: Callable[[Any], None] | None = None, calibrate: bool = True) -> BlockLatency:
    """Every op the pruning can use, measured on ``device`` into the base space's table at the subnet's
    resolution (what is there already is reused, an interrupted run resumes), read back as the latency source —
    the pruned widths become ordinary entries of the same table — and calibrated on whole networks.

    The calibration is the lookup-table predictor's ``a · Σ + b``, through two points measured end to end now:
    the smallest pruning in alternation with the unpruned subnet (``Device.run_paired``; none with
    ``calibrate=False``). The unpruned subnet is kept as the speed reference of the prune's closed loop, as
    `tailor predictor calibrate` keeps one. A sum
    of single-op runs carries each op's own call overhead, which a whole network pays once, so narrow prunings run
    well under their table sum (benchmarks/results/prune.md), and the table may have been measured on another day
    of this machine's drifting speed; a pruning sits between the two points, so the line holds where the search
    looks."""
    from tailorkit.predictors.lut import LutSumPredictor
    from tailorkit.profiler.api import table_name
    from tailorkit.profiler.tables import build_table

    base = space.base_space
    r = int(base.input_shape(space.arch)[-1])
    name = table_name(base.name, base.width, r)
    report = build_table(space.grid_ops(), name, device, store, settings, space=base.name,
                         meta={"space": base.name, "width": base.width, "resolution": r}, progress=progress)
    table = store.table(name, device=report.device.fingerprint, settings=settings.fingerprint)
    predictor = LutSumPredictor(table, device=report.device.name)
    latency = predictor_latency(space, predictor, what=f"table {name} measured on {report.device.name}")
    return _calibrated(space, latency, device, settings) if calibrate else latency


def _calibrated(space: PruningSpace, latency: BlockLatency, device: Any, settings: Any) -> BlockLatency:
    """The line through the unpruned subnet and the smallest pruning. They are measured in alternation, so their
    ratio holds however the machine's speed moves meanwhile; the smallest pruning is placed at that ratio × the
    unpruned subnet's median."""
    from tailorkit.profiler.tables import export_module

    shape = tuple(space.base_space.input_shape(space.arch))
    ends = {"unpruned": (KEEP_EIGHTHS[-1],) * space.n_blocks, "smallest": (KEEP_EIGHTHS[0],) * space.n_blocks}
    sums = {k: float(latency.table_sum(np.array([keep]))[0]) for k, keep in ends.items()}
    with tempfile.TemporaryDirectory(prefix="tailor-prune-") as tmp:
        paths = {k: export_module(build_network(space.pruned_ops(keep)), torch.randn(*shape), Path(tmp) / k,
                                  device.model_format) for k, keep in ends.items()}
        paired = device.run_paired(paths["smallest"], paths["unpruned"], settings)
    unpruned = float(paired.reference.median if paired.reference.median is not None else paired.reference.mean)
    m = {"unpruned": unpruned, "smallest": paired.ratio * unpruned}
    a = (m["unpruned"] - m["smallest"]) / (sums["unpruned"] - sums["smallest"])
    b = m["unpruned"] - a * sums["unpruned"]
    if not a > 0:  # noise swamped the difference: keep the ratio at the unpruned end
        a, b = m["unpruned"] / sums["unpruned"], 0.0
    out = copy.copy(latency)
    out.scale, out.offset = a, b
    out.description = (f"{latency.description}, calibrated {a:.3f} x sum {b:+.3f} ms on the unpruned subnet "
                       f"({m['unpruned']:.3f} ms measured, table sum {sums['unpruned']:.3f}) and the smallest "
                       f"pruning ({m['smallest']:.3f} ms, sum {sums['smallest']:.3f}), measured in alternation")
    base = space.base_space
    out.calibration = {"scale": a, "offset_ms": b, "pairs": paired.pairs, "ratio": paired.ratio,
                       "ratio_spread": paired.ratio_spread, "measured_ms": m, "table_sum_ms": sums,
                       "reference": {"space": base.name, "width": float(base.width),
                                     "num_classes": int(base.num_classes), "arch": base.arch_to_dict(space.arch),
                                     "ms": unpruned, "spread": paired.ratio_spread}}
    return out


# ---------------------------------------------------------------------------------------------- modules


def channel_order(block: MBConv) -> torch.Tensor:
    """The block's middle channels, most important first: L1 norm of the project conv's weights on each."""
    return block.project[0].weight.detach().abs().sum(dim=(0, 2, 3)).argsort(descending=True, stable=True)


@torch.no_grad()
def prune_block(block: MBConv, op: OpSpec) -> MBConv:
    """``block`` narrowed to ``op.expand`` middle channels (the most important), as ``build_op(op)`` with the
    kept weights."""
    mid = op.expand
    keep = channel_order(block)[:mid].sort().values
    target = build_op(op)
    assert isinstance(target, MBConv) and not isinstance(block.expand, nn.Identity)
    target.expand[0].weight.copy_(block.expand[0].weight[keep])
    _copy_bn(target.expand[1], block.expand[1], keep)
    target.depthwise[0].weight.copy_(block.depthwise[0].weight[keep])
    _copy_bn(target.depthwise[1], block.depthwise[1], keep)
    if isinstance(block.se, SqueezeExcite):
        assert isinstance(target.se, SqueezeExcite)
        reduce_w = block.se.reduce.weight[:, keep]
        expand_w = block.se.expand.weight[keep]
        # the SE's hidden units shrink with it (a quarter of the middle width): keep the strongest
        strength = reduce_w.abs().sum(dim=(1, 2, 3)) + expand_w.abs().sum(dim=(0, 2, 3))
        hidden = strength.argsort(descending=True, stable=True)[:target.se.reduce.out_channels].sort().values
        target.se.reduce.weight.copy_(reduce_w[hidden])
        target.se.reduce.bias.copy_(block.se.reduce.bias[hidden])
        target.se.expand.weight.copy_(expand_w[:, hidden])
        target.se.expand.bias.copy_(block.se.expand.bias[keep])
    target.project[0].weight.copy_(block.project[0].weight[:, keep])
    target.project[1].load_state_dict(block.project[1].state_dict())
    target.project[1].eps = block.project[1].eps
    return target.eval()


def _copy_bn(target: nn.Module, source: nn.Module, keep: torch.Tensor) -> None:
    assert isinstance(target, nn.BatchNorm2d) and isinstance(source, nn.BatchNorm2d)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[keep])
    target.eps = source.eps


def prune_network(model: nn.Sequential, space: PruningSpace, keep: Sequence[int],
                  digits_ops: Sequence[OpSpec]) -> nn.Sequential:
    """A pruned copy of ``model`` (the base subnet as ``nn.Sequential`` of its ops' modules)."""
    ops = space.pruned_ops(keep, digits_ops)
    layers = list(model.children())
    if len(layers) != len(ops):
        raise ConfigError(f"the network has {len(layers)} layers; the subnet's ops are {len(ops)}")
    pruned = set(space.blocks)
    out = [prune_block(layer, ops[i])
           if i in pruned and isinstance(layer, MBConv) and ops[i].expand != digits_ops[i].expand
           else copy.deepcopy(layer) for i, layer in enumerate(layers)]
    return nn.Sequential(*out).eval()


def save_weights(model: nn.Module, path: Path) -> None:
    """The state dict as plain arrays (``np.savez``; loaded with ``allow_pickle=False``)."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())


def load_weights(model: ModuleT, path: Path) -> ModuleT:
    try:
        with np.load(path, allow_pickle=False) as npz:
            state = {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"pruned weights {str(path)!r} are unreadable ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else "shape mismatch"
        raise ConfigError(f"pruned weights {str(path)!r} do not fit the pruned network: {first}") from None
    return model.eval()


# ---------------------------------------------------------------------------------------------- accuracy


class PrunedAccuracy:
    """Digits validation accuracy of each pruning, after re-estimating batch norm on a few training batches
    (pruning shifts the statistics the next layers see); memoised, since evolution revisits candidates."""

    def __init__(self, space: PruningSpace, model: nn.Sequential, digits_ops: Sequence[OpSpec], data: Any,
                 resolution: int) -> None:
        from tailorkit.search.supernet import at_resolution

        self.space, self.model, self.digits_ops, self.data, self.r = space, model, list(digits_ops), data, resolution
        self.calibration = [at_resolution(data.train_x[i:i + CALIBRATION_BATCH], resolution)
                            for i in range(0, CALIBRATION_BATCHES * CALIBRATION_BATCH, CALIBRATION_BATCH)]
        self.description = "digits validation accuracy of the pruned subnet (batch norm re-estimated)"
        self._memo: dict[bytes, float] = {}

    def network(self, keep: Sequence[int]) -> nn.Sequential:
        net = prune_network(self.model, self.space, keep, self.digits_ops)
        recalibrate_bn(net, self.calibration)
        return net.eval()

    def __call__(self, values: np.ndarray) -> np.ndarray:
        from tailorkit.search.supernet import accuracy

        values = np.asarray(values, dtype=np.int64)
        out = np.empty(values.shape[0])
        with torch.no_grad():
            for i, row in enumerate(values):
                key = row.tobytes()
                if key not in self._memo:
                    self._memo[key] = accuracy(self.network(row.tolist()), self.data, self.r, "val")
                out[i] = self._memo[key]
        return out


# ------------------------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class PruneResult:
    """What ``tailor prune`` found and saved (``NAME.json``; weights in ``weights["file"]`` beside it)."""

    space: dict[str, Any]  # base space: name, width
    arch: dict[str, Any]  # the base subnet pruned
    base: dict[str, Any]  # where its weights came from (supernet checkpoint, sha256, fine-tuning)
    strategy: dict[str, Any]
    target_ms: float
    episodes: int
    seed: int
    seconds: float
    latency_source: str
    keep_eighths: list[int]
    widths: list[int]  # middle channels of each prunable block after pruning
    base_widths: list[int]
    predicted: dict[str, Any]  # latency_ms of the pruned and the base subnet (with the source's device)
    accuracy: dict[str, Any]  # base / pruned (search, before fine-tuning) / fine-tuned, digits val and test
    weights: dict[str, Any]  # file (relative to the result), sha256, parameters
    uniform: dict[str, Any] | None = None  # the same budget met by one keep ratio everywhere, for comparison
    curve: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str = ""
    tailorkit: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruneResult:
        return from_document(cls, data, SCHEMA, SCHEMA_VERSION, "prune result")


def is_prune_result(path: str | Path) -> bool:
    try:
        return read_json_object(path, "result").get("schema") == SCHEMA
    except ConfigError:
        return False


def weights_path(result_path: Path, result: PruneResult) -> Path:
    return result_path.parent / str(result.weights["file"])


def load_prune_result(path: str | Path) -> PruneResult:
    return PruneResult.from_dict(read_json_object(path, "prune result"))


def write_result(result: PruneResult, path: str | Path, model: nn.Module) -> PruneResult:
    """``path`` and its weights beside it (same name, ``.npz``): weights first, then the JSON, each through a
    temporary file renamed into place, so a result file always names weights that are there and match it."""
    path = Path(path)
    if path.suffix != ".json":
        raise ConfigError(f"the prune result is a .json file (its weights go beside it as .npz), got {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"output {str(path)!r} is a directory; give a .json file")
    path.parent.mkdir(parents=True, exist_ok=True)
    result = replace(result, weights={**result.weights, "file": path.with_suffix(".npz").name})
    weights = path.parent / str(result.weights["file"])
    tmp_w = weights.with_name(f".{weights.name}.tmp")
    save_weights(model, tmp_w)
    digest = sha256_file(tmp_w)
    os.replace(tmp_w, weights)
    result = replace(result, weights={**result.weights, "sha256": digest})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return result


def pruned_base(result: PruneResult) -> tuple[Any, Any]:
    """The space and the subnet a prune result pruned (checked against the space)."""
    from tailorkit.spaces import create_space

    space = create_space(result.space["name"], float(result.space.get("width") or 1.0))
    return space, space.arch_from_dict(result.arch)


def pruned_model(path: str | Path) -> tuple[PruneResult, Any, Any, nn.Sequential]:
    """The saved pruned network of a result file, checked against its weights' checksum: (result, base space,
    base arch, network with the 10 digit classes)."""
    from tailorkit.search.specialize import digits_space

    path = Path(path)
    result = load_prune_result(path)
    space, arch = pruned_base(result)
    pruning = PruningSpace(space, arch)
    keep = pruning.check(result.keep_eighths)
    weights = weights_path(path, result)
    if not weights.is_file():
        raise ConfigError(f"the prune result's weights {str(weights)!r} are missing")
    if sha256_file(weights) != result.weights.get("sha256"):
        raise ConfigError(f"the prune result's weights {str(weights)!r} do not match its checksum (altered or "
                          "from another run)")
    digits = digits_space(space)
    net = load_weights(build_network(pruning.pruned_ops(keep, digits.ops(arch))), weights)
    return result, space, arch, net


# -------------------------------------------------------------------------------------------- front door


@dataclass(frozen=True)
class PruneProgress:
    episodes: int
    total: int
    best_accuracy: float
    phase: str = "search"


def uniform_keep(space: PruningSpace, latency: BlockLatency, target_ms: float) -> tuple[int, ...] | None:
    """The largest single keep ratio, the same for every block, that meets the target (None: none does)."""
    for k in sorted(KEEP_EIGHTHS, reverse=True):
        keep = (k,) * space.n_blocks
        if float(latency(np.array([keep]))[0]) <= target_ms:
            return keep
    return None


def prune(space: Any, arch: Any, supernet: str | Path, latency: BlockLatency, *, target_ms: float,
          strategy: str = "ddpg", episodes: int = 300, seed: int = 0, finetune_epochs: int = 3,
          data: Any = None, options: Mapping[str, Any] | None = None,
          progress: Callable[[PruneProgress], None] | None = None,
          checkpoint: str | Path | None = None) -> tuple[PruneResult, nn.Sequential]:
    """Search the pruning of ``arch`` (weights from the supernet checkpoint, batch norm re-estimated) that is
    most accurate on digits validation within ``target_ms`` of predicted latency; fine-tune it; return the
    result (not yet written: see :func:`write_result`) and the pruned network. With ``checkpoint`` the search
    is saved as it goes and a rerun with the same settings resumes it (another pruning's checkpoint is refused)."""
    from tailorkit.search.genome import Genome
    from tailorkit.search.rewards import LatencyCapReward
    from tailorkit.search.runner import SearchRunner
    from tailorkit.search.specialize import deploy_resolution, digits_space
    from tailorkit.search.strategies import strategies
    from tailorkit.search.supernet import (
        CHECKPOINT,
        accuracy,
        calibrated_subnet,
        load_digits_splits,
        load_supernet,
        train_subnet,
    )

    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if finetune_epochs < 0:
        raise ConfigError(f"fine-tuning epochs must be >= 0, got {finetune_epochs}")
    if not math.isfinite(target_ms) or target_ms <= 0:
        raise ConfigError(f"the target latency must be a positive number of ms, got {target_ms}")
    pruning = PruningSpace(space, arch)
    genome = Genome(pruning)
    smallest = float(latency(np.array([(KEEP_EIGHTHS[0],) * pruning.n_blocks]))[0])
    full = float(latency(np.array([(KEEP_EIGHTHS[-1],) * pruning.n_blocks]))[0])
    if target_ms < smallest:
        raise ConfigError(f"target {target_ms:g} ms is below the fastest pruning's {smallest:.4g} ms (every block "
                          f"at {KEEP_EIGHTHS[0]}/8); the unpruned subnet is {full:.4g} ms")
    ckpt = Path(supernet)
    net, config, _ = load_supernet(ckpt)
    if config.space != space.name or float(config.width) != float(space.width):
        raise ConfigError(f"supernet {str(ckpt)!r} is {config.space} width {config.width}; the subnet is "
                          f"{space.name} width {space.width}")
    data = data or load_digits_splits()
    r = deploy_resolution(space, arch)
    base = calibrated_subnet(net, data, arch).eval()
    digits_ops = digits_space(space).ops(arch)
    acc_source = PrunedAccuracy(pruning, base, digits_ops, data, r)
    evaluator = _FeasibleOnlyEvaluator(genome, latency, LatencyCapReward(target_ms), acc_source)
    opts = dict(options or {})
    uniform = uniform_keep(pruning, latency, target_ms)
    if strategy == "evolution":  # feasible parents from the start: random prunings rarely meet a tight budget
        opts.setdefault("seed_genes", genome.indices(np.array(
            [k for k in (uniform, (KEEP_EIGHTHS[0],) * pruning.n_blocks) if k is not None])))
    if strategy == "ddpg":
        per_block, fixed = latency.per_block()
        opts.setdefault("warmup", max(1, min(100, episodes // 4)))
        opts.update(layer_features=_layer_features(pruning), block_latency=per_block, fixed_ms=fixed,
                    target_ms=target_ms)
    constraint = evaluator.feasible if strategy in ("evolution", "random") else None
    strat = strategies.get(strategy)(genome, seed=seed, constraint=constraint, **opts)
    callbacks = []
    if progress is not None:
        callbacks.append(lambda p: progress(PruneProgress(p.evaluated, p.budget, p.best_reward)))
    torch.manual_seed(seed)
    fingerprint = {"space": pruning.name, "base": space.arch_to_dict(arch), "width": space.width,
                   "supernet": sha256_file(ckpt / CHECKPOINT), "target_ms": float(target_ms),
                   "latency": latency.description, "strategy": strat.describe(), "seed": int(seed)}
    runner = SearchRunner(evaluator, strat, episodes, callbacks=callbacks, fingerprint=fingerprint,
                          checkpoint=checkpoint)
    hist = runner.run()
    reward = np.where(np.isfinite(hist.reward), hist.reward, -np.inf)
    if not np.isfinite(reward).any():
        raise ConfigError(f"no pruning within {target_ms:g} ms was found in {episodes} episodes")
    best_i = int(np.argmax(reward))
    keep = pruning.from_genes(genome.values(hist.genes[best_i:best_i + 1]))[0]
    pruned = acc_source.network(keep)
    searched = {"val": float(hist.accuracy[best_i]), "test": accuracy(pruned, data, r, "test")}
    if finetune_epochs:
        if progress is not None:
            progress(PruneProgress(episodes, episodes, float(reward[best_i]), "fine-tune"))
        pruned = train_subnet(pruned, data, r, epochs=finetune_epochs, lr=0.01, seed=seed)
        pruned = pruned.to(memory_format=torch.contiguous_format).eval()
    base_acc = {"val": accuracy(base, data, r, "val"), "test": accuracy(base, data, r, "test")}
    tuned = {"val": accuracy(pruned, data, r, "val"), "test": accuracy(pruned, data, r, "test")} \
        if finetune_epochs else dict(searched)  # without fine-tuning the network is the one just scored
    uniform_entry = None
    if uniform is not None:
        u_net = acc_source.network(uniform)
        uniform_entry = {"keep_eighths": list(uniform), "latency_ms": float(latency(np.array([uniform]))[0]),
                         "accuracy_val": accuracy(u_net, data, r, "val"),
                         "accuracy_test": accuracy(u_net, data, r, "test")}
    log.info("pruned %d blocks to %s eighths: %.4g ms predicted (budget %.4g, unpruned %.4g), val accuracy %.4f "
             "(uniform %s)", pruning.n_blocks, list(keep), float(hist.latency_ms[best_i]), target_ms, full,
             searched["val"], None if uniform_entry is None else round(uniform_entry["accuracy_val"], 4))
    best_so_far = np.maximum.accumulate(reward)
    marks = sorted({min(len(reward), max(1, round(len(reward) * f / 20))) for f in range(1, 21)})
    result = PruneResult(
        space={"name": space.name, "width": space.width}, arch=space.arch_to_dict(arch),
        base={"kind": "supernet", "checkpoint": str(ckpt), "sha256": sha256_file(ckpt / CHECKPOINT),
              "bn_recalibrated": True},
        strategy=strat.describe(), target_ms=float(target_ms), episodes=int(runner.evaluated), seed=int(seed),
        seconds=round(runner.seconds, 3), latency_source=latency.description, keep_eighths=list(keep),
        widths=pruning.widths(keep), base_widths=[pruning.base_ops[i].expand for i in pruning.blocks],
        predicted={"latency_ms": float(hist.latency_ms[best_i]), "base_latency_ms": full,
                   "source": latency.description, "device": latency.device, "calibration": latency.calibration},
        accuracy={"base": base_acc, "searched": searched, "fine_tuned": tuned,
                  "finetune_epochs": int(finetune_epochs), "dataset": "scikit-learn digits"},
        weights={"file": "", "parameters": int(sum(p.numel() for p in pruned.parameters())),
                 "base_parameters": int(sum(p.numel() for p in base.parameters()))},
        uniform=uniform_entry,
        curve=[[int(m), float(best_so_far[m - 1])] for m in marks],
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return result, pruned


class _FeasibleOnlyEvaluator:
    """The search's evaluator for prunings under the cap reward, except that a pruning past the budget (reward
    −inf whatever its accuracy) is not built and evaluated: accuracy is the expensive part of an episode. Its
    accuracy is NaN in the history."""

    def __init__(self, genome: Any, latency: BlockLatency, reward: Any, accuracy: PrunedAccuracy) -> None:
        self.genome, self.latency, self.reward, self.accuracy = genome, latency, reward, accuracy

    def __call__(self, idx: np.ndarray) -> Any:
        from tailorkit.search.strategies import Evaluations

        values = self.genome.values(np.asarray(idx))
        lat = self.latency(values)
        ok = self.reward.feasible(lat)
        acc = np.full(lat.shape[0], np.nan)
        if ok.any():
            acc[ok] = self.accuracy(values[ok])
        reward = np.where(ok, acc, -np.inf)
        return Evaluations(latency_ms=lat, accuracy=acc, reward=reward, objectives=np.stack([lat, -acc], axis=1))

    def feasible(self, idx: np.ndarray) -> np.ndarray:
        return self.reward.feasible(self.latency(self.genome.values(np.asarray(idx))))


def _layer_features(space: PruningSpace) -> np.ndarray:
    """AMC's static state of each prunable layer: input channels, middle channels, output channels, spatial
    size, stride, kernel, and its multiply-accumulates (log) at full width."""
    rows = []
    for i in space.blocks:
        op = space.base_ops[i]
        h, _, cin = op.input_shape
        ho, _, cout = op.output_shape
        mid = op.expand
        macs = h * h * cin * mid + ho * ho * mid * op.kernel ** 2 + ho * ho * mid * cout
        rows.append([cin, mid, cout, h, op.stride, op.kernel, math.log(macs)])
    return np.asarray(rows, dtype=np.float64)
