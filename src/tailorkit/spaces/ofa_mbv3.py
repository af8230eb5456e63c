"""The once-for-all MobileNetV3 space: its op inventory (keys identical to OFA's lookup tables) and subnets.

Structure (OFA, Cai et al. 2020): a 3×3 stride-2 conv, a fixed MBConv with expand ratio 1, five stages of
2–4 MBConv blocks (kernel 3/5/7, expand ratio 3/4/6 per block), a 1×1 expand conv, global pooling, a 1×1
feature-mix conv and the classifier. Widths scale with the width multiplier (OFA ships 1.0 and 1.2).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.core.records import OpSpec
from tailorkit.spaces.base import Space, check_fields, make_divisible, strict_ints

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
RESOLUTIONS = tuple(range(128, 225, 4))
WIDTHS = (1.0, 1.2)

# (base width, stride of the first block, activation, squeeze-excite) per stage, from OFA's MobileNetV3.
_STAGES = ((24, 2, "relu", False), (40, 2, "relu", True), (80, 2, "hswish", False),
           (112, 1, "hswish", True), (160, 2, "hswish", True))
_FIRST_CONV, _FIRST_BLOCK, _FINAL_EXPAND, _FEATURE_MIX = 16, 16, 960, 1280
MAX_DEPTH = max(DEPTHS)
N_BLOCKS = MAX_DEPTH * len(_STAGES)

# lookup arrays for vectorised batches: value → choice index (-1: not a choice); block slot → stage, position
_K_INDEX = np.full(8, -1, dtype=np.int64)
_K_INDEX[list(KERNELS)] = np.arange(len(KERNELS))
_E_INDEX = np.full(8, -1, dtype=np.int64)
_E_INDEX[list(EXPANDS)] = np.arange(len(EXPANDS))
_D_VALID = np.zeros(8, dtype=np.int8)
_D_VALID[list(DEPTHS)] = 1
_BLOCK_STAGE = np.repeat(np.arange(len(_STAGES)), MAX_DEPTH)
_BLOCK_POSITION = np.tile(np.arange(MAX_DEPTH), len(_STAGES))
_SLOT_BASE = (_BLOCK_STAGE * 2 + np.minimum(_BLOCK_POSITION, 1)) * len(KERNELS) * len(EXPANDS)
_RES_INDEX = np.full(max(RESOLUTIONS) + 1, -1, dtype=np.int64)
_RES_INDEX[list(RESOLUTIONS)] = np.arange(len(RESOLUTIONS))


@dataclass(frozen=True)
class OFAArch:
    """A subnet: kernel and expand ratio for each of the 20 block slots (slots past a stage's depth are
    ignored, as in OFA), depth per stage, input resolution."""

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    def __post_init__(self) -> None:
        for name, values, choices, length in (("ks", self.ks, KERNELS, N_BLOCKS), ("e", self.e, EXPANDS, N_BLOCKS),
                                              ("d", self.d, DEPTHS, len(_STAGES))):
            ints = strict_ints(values)
            if ints is None or len(ints) != length or any(v not in choices for v in ints):
                raise ConfigError(f"OFA arch {name} must be {length} values from {choices}, got {values!r}")
            object.__setattr__(self, name, ints)
        if isinstance(self.r, bool) or not isinstance(self.r, (int, np.integer)) or self.r not in RESOLUTIONS:
            raise ConfigError(f"OFA arch resolution must be one of 128..224 step 4, got {self.r}")

    def to_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OFAArch:
        check_fields(data, ("ks", "e", "d", "r"), "an OFA arch")
        for name in ("ks", "e", "d"):
            if not isinstance(data[name], (list, tuple)):
                raise ConfigError(f"OFA arch {name} must be a list, got {data[name]!r}")
        r = data["r"]
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise ConfigError(f"OFA arch r must be an integer resolution, got {r!r}")
        return cls(ks=tuple(data["ks"]), e=tuple(data["e"]), d=tuple(data["d"]), r=int(r))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


class OFAMobileNetV3Space(Space):
    """``ops(arch)`` lists the ops a subnet runs in order; ``all_ops(r)`` every distinct op at a resolution
    (what a lookup table must hold); ``build(arch)`` the subnet as a torch module made of those ops. The
    encoding is the k/e/d/r integer row of :meth:`to_array`."""

    name = "ofa-mbv3"
    buildable = True
    encoding_name = "k/e/d/r integers"

    def __init__(self, width: float = 1.0, num_classes: int = 1000) -> None:
        if width not in WIDTHS:
            raise ConfigError(f"OFA-MobileNetV3 comes in widths {WIDTHS}, got {width}")
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        self.width = width
        self.num_classes = num_classes
        self.first_conv = make_divisible(_FIRST_CONV * width)
        self.first_block = make_divisible(_FIRST_BLOCK * width)
        self.stage_widths = tuple(make_divisible(base * width) for base, *_ in _STAGES)
        self.final_expand = make_divisible(_FINAL_EXPAND * width)
        self.feature_mix = make_divisible(_FEATURE_MIX * width)

    def with_classes(self, num_classes: int) -> OFAMobileNetV3Space:
        """The same space with another classifier (the ops differ only in its key)."""
        return type(self)(width=self.width, num_classes=num_classes)

    @property
    def variant(self) -> str:
        """Name of the concrete variant, used in table names (e.g. ``ofa-mbv3-w1.2``)."""
        return f"{self.name}-w{self.width:g}"

    # -------------------------------------------------------------------------------------------- archs

    def largest(self, resolution: int = 224) -> OFAArch:
        return OFAArch(ks=(max(KERNELS),) * N_BLOCKS, e=(max(EXPANDS),) * N_BLOCKS, d=(max(DEPTHS),) * len(_STAGES),
                       r=resolution)

    def smallest(self, resolution: int = 128) -> OFAArch:
        return OFAArch(ks=(min(KERNELS),) * N_BLOCKS, e=(min(EXPANDS),) * N_BLOCKS, d=(min(DEPTHS),) * len(_STAGES),
                       r=resolution)

    def sample(self, rng: np.random.Generator, resolution: int | None = None) -> OFAArch:
        return OFAArch(ks=tuple(rng.choice(KERNELS, N_BLOCKS)), e=tuple(rng.choice(EXPANDS, N_BLOCKS)),
                       d=tuple(rng.choice(DEPTHS, len(_STAGES))),
                       r=int(resolution if resolution is not None else rng.choice(RESOLUTIONS)))

    @property
    def size(self) -> int:
        per_stage = sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS)
        return per_stage ** len(_STAGES) * len(RESOLUTIONS)

    @property
    def encoding_length(self) -> int:
        return 2 * N_BLOCKS + len(_STAGES) + 1

    def gene_choices(self) -> list[tuple[int, ...]]:
        """The k/e/d/r row of :meth:`to_array`: the genes are the arch's own values."""
        return [KERNELS] * N_BLOCKS + [EXPANDS] * N_BLOCKS + [DEPTHS] * len(_STAGES) + [RESOLUTIONS]

    def genes(self, archs: Sequence[OFAArch], rng: np.random.Generator | None = None) -> np.ndarray:
        return self.to_array(archs)

    def from_genes(self, genes: np.ndarray) -> list[OFAArch]:
        return self.from_array(genes)

    def live_genes(self, genes: np.ndarray) -> np.ndarray:
        genes = np.asarray(genes).reshape(-1, 46)
        active = _BLOCK_POSITION[None, :] < genes[:, 40:45][:, _BLOCK_STAGE]
        return np.concatenate([active, active, np.ones((genes.shape[0], len(_STAGES) + 1), dtype=bool)], axis=1)

    def encode_batch(self, archs: Sequence[OFAArch]) -> np.ndarray:
        return self.to_array(archs)

    def decode(self, vec: np.ndarray) -> OFAArch:
        return self.from_array(np.asarray(vec).reshape(1, -1))[0]

    def arch_to_dict(self, arch: OFAArch) -> dict[str, Any]:
        return arch.to_dict()

    def arch_from_dict(self, data: Mapping[str, Any]) -> OFAArch:
        return OFAArch.from_dict(data)

    # ---------------------------------------------------------------------------------------------- ops

    def _head(self, r: int) -> tuple[list[OpSpec], int]:
        h = -(-r // 2)
        ops = [OpSpec.ofa_fixed("Conv", (r, r, 3), (h, h, self.first_conv)),
               self._block(h, self.first_conv, self.first_block, 3, 1, 1, "relu", False)]
        return ops, h

    def _tail(self, h: int) -> list[OpSpec]:
        c = self.stage_widths[-1]
        return [OpSpec.ofa_fixed("Conv_1", (h, h, c), (h, h, self.final_expand)),
                OpSpec.ofa_fixed("AvgPool2D", (h, h, self.final_expand), (1, 1, self.final_expand)),
                OpSpec.ofa_fixed("Conv_2", (1, 1, self.final_expand), (1, 1, self.feature_mix)),
                OpSpec.ofa_fixed("Logits", (1, 1, self.feature_mix), (self.num_classes,))]

    @staticmethod
    def _block(h: int, cin: int, cout: int, kernel: int, stride: int, ratio: float, act: str, se: bool) -> OpSpec:
        out = -(-h // stride)
        return OpSpec("expanded_conv", (h, h, cin), (out, out, cout), kernel=kernel, stride=stride,
                      expand=make_divisible(round(cin * ratio)), idskip=stride == 1 and cin == cout, se=se,
                      activation=act)

    def ops(self, arch: OFAArch) -> list[OpSpec]:
        ops, h = self._head(arch.r)
        cin = self.first_block
        stages = zip(_STAGES, self.stage_widths, arch.d, strict=True)
        for stage, ((_, stride, act, se), cout, depth) in enumerate(stages):
            for j in range(depth):
                slot = stage * MAX_DEPTH + j
                s = stride if j == 0 else 1
                ops.append(self._block(h, cin, cout, arch.ks[slot], s, arch.e[slot], act, se))
                h, cin = -(-h // s), cout
        return ops + self._tail(h)

    def all_ops(self, resolution: int) -> list[OpSpec]:
        if resolution not in RESOLUTIONS:
            raise ConfigError(f"OFA-MobileNetV3 resolutions are 128..224 step 4, got {resolution}")
        ops, h = self._head(resolution)
        cin = self.first_block
        for (_, stride, act, se), cout in zip(_STAGES, self.stage_widths, strict=True):
            # every depth choice has a first (strided) block and at least one repeated block per stage
            for s, block_in in ((stride, cin), (1, cout)):
                ops += [self._block(h, block_in, cout, k, s, e, act, se) for e in EXPANDS for k in KERNELS]
                h = -(-h // s)
            cin = cout
        return ops + self._tail(h)

    # ------------------------------------------------------------------------------------- batches

    @staticmethod
    def to_array(archs: Sequence[OFAArch]) -> np.ndarray:
        """The k/e/d/r integer encoding, one row per arch: 20 kernels, 20 expand ratios, 5 depths, resolution."""
        return np.array([arch.ks + arch.e + arch.d + (arch.r,) for arch in archs], dtype=np.int64).reshape(-1, 46)

    @staticmethod
    def from_array(array: np.ndarray) -> list[OFAArch]:
        array = np.asarray(array, dtype=np.int64)
        if array.ndim != 2 or array.shape[1] != 46:
            raise ConfigError(f"OFA arch arrays have 46 columns (20 k, 20 e, 5 d, r), got shape {array.shape}")
        return [OFAArch(ks=tuple(row[:20]), e=tuple(row[20:40]), d=tuple(row[40:45]), r=int(row[45]))
                for row in array]

    @staticmethod
    def one_hot(array: np.ndarray) -> np.ndarray:
        """OFA's accuracy-predictor encoding, one row per arch: per block slot a one-hot kernel and a one-hot
        expand ratio (all zeros for a slot past its stage's depth), then a one-hot resolution; 20·6 + 25 =
        145 floats. Vectorised over the batch."""
        array = np.asarray(array, dtype=np.int64)
        if array.ndim != 2 or array.shape[1] != 46:
            raise ConfigError(f"OFA arch arrays have 46 columns (20 k, 20 e, 5 d, r), got shape {array.shape}")
        n = array.shape[0]
        k_idx, e_idx = _K_INDEX[array[:, :20]], _E_INDEX[array[:, 20:40]]
        r_idx = np.searchsorted(RESOLUTIONS, array[:, 45])
        if ((k_idx < 0) | (e_idx < 0)).any() or (r_idx >= len(RESOLUTIONS)).any() or \
                (np.asarray(RESOLUTIONS)[np.minimum(r_idx, len(RESOLUTIONS) - 1)] != array[:, 45]).any():
            raise ConfigError("OFA archs take kernels from {3,5,7}, expands from {3,4,6}, resolutions 128..224")
        active = (_BLOCK_POSITION[None, :] < array[:, 40:45][:, _BLOCK_STAGE]).astype(np.float32)
        blocks = np.zeros((n, N_BLOCKS, len(KERNELS) + len(EXPANDS)), dtype=np.float32)
        rows, slots = np.arange(n)[:, None], np.arange(N_BLOCKS)[None, :]
        blocks[rows, slots, k_idx] = active
        blocks[rows, slots, len(KERNELS) + e_idx] = active
        res = np.zeros((n, len(RESOLUTIONS)), dtype=np.float32)
        res[np.arange(n), r_idx] = 1.0
        return np.concatenate([blocks.reshape(n, -1), res], axis=1)

    def op_counts(self, array: np.ndarray, keys: Sequence[str]) -> np.ndarray:
        """How often each op key occurs in each arch (N × len(keys)), vectorised over the batch: the design
        matrix of a lookup-table predictor. An op an arch needs that ``keys`` lacks is an error naming it."""
        column = {key: i for i, key in enumerate(keys)}
        if len(column) != len(keys):
            raise ConfigError("op keys must be distinct")
        n_keys = len(keys)
        counts = np.zeros((np.shape(array)[0], n_keys), dtype=np.float32)
        for rows, fixed, slots, slot, active in self._slots(array):
            for key in fixed:
                counts[rows, _lookup(column, key)] += 1
            cols = np.array([column.get(key, -1) for key in slots])[slot]
            _require_all(cols >= 0, active, slots, slot)
            flat = (np.arange(rows.size)[:, None] * n_keys + cols)[active]
            counts[rows] += np.bincount(flat, minlength=rows.size * n_keys).reshape(rows.size, n_keys)
        return counts

    def lut_sum(self, array: np.ndarray, latency: Mapping[str, float]) -> np.ndarray:
        """Σ of the table latencies of each arch's ops (N,), by gathering per block slot from a (resolution ×
        slot) matrix of the table's values: no design matrix, no loop over the batch's resolutions, so it runs
        at millions of archs per second and small batches (a search's generations) cost little more than the
        gather."""
        res, slot_all, active_all = self._blocks(array)
        if res.size == 0:
            return np.zeros(0)
        if res.min() < 0 or res.max() >= _RES_INDEX.size or (_RES_INDEX[res] < 0).any():
            bad = next(int(r) for r in res if not 0 <= r < _RES_INDEX.size or _RES_INDEX[r] < 0)
            raise ConfigError(f"OFA-MobileNetV3 resolutions are 128..224 step 4, got {bad}")
        ri = _RES_INDEX[res]
        matrix, fixed_sums = self._table_matrix(latency, np.flatnonzero(np.bincount(ri, minlength=len(RESOLUTIONS))))
        fixed = fixed_sums[ri]
        if np.isnan(fixed).any():  # name the missing fixed op
            for key in self._slot_inventory(RESOLUTIONS[int(ri[np.isnan(fixed)][0])])[0]:
                _lookup(latency, key)
        values = matrix[ri[:, None], slot_all]
        missing = active_all & np.isnan(values)
        if missing.any():
            i, j = np.argwhere(missing)[0]
            keys = self._slot_inventory(RESOLUTIONS[int(ri[i])])[1].ravel()
            raise ConfigError(f"no latency for op {keys[slot_all[i, j]]!r}")
        return fixed + np.where(active_all, values, 0.0).sum(axis=1)

    def _table_matrix(self, latency: Mapping[str, float], resolutions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The table's latency of every slot key per resolution (NaN: missing or not built) and of each
        resolution's fixed ops, filled in for ``resolutions`` (indices into RESOLUTIONS) on first use and cached
        per table: a search sums hundreds of small batches against the same table, and building these from
        the keys cost more than the sums. The cache holds the mapping itself, so an id is never mistaken for
        another table's; mappings are taken as immutable (predictors never change theirs)."""
        cache: dict[int, tuple[Any, np.ndarray, np.ndarray, np.ndarray]] = \
            self.__dict__.setdefault("_matrix_cache", {})
        hit = cache.get(id(latency))
        if hit is None or hit[0] is not latency:
            if len(cache) >= 64:  # interpolating predictors pass a fresh mapping per call
                cache.clear()
            n_slots = len(_STAGES) * 2 * len(KERNELS) * len(EXPANDS)
            hit = (latency, np.full((len(RESOLUTIONS), n_slots), np.nan), np.full(len(RESOLUTIONS), np.nan),
                   np.zeros(len(RESOLUTIONS), dtype=bool))
            cache[id(latency)] = hit
        _, matrix, fixed_sums, built = hit
        for i in resolutions[~built[resolutions]].tolist():
            fixed, slots = self._slot_inventory(RESOLUTIONS[i])
            matrix[i] = [latency.get(k, np.nan) for k in slots.ravel()]
            fixed_sums[i] = sum(latency.get(k, np.nan) for k in fixed)
            built[i] = True
        return matrix, fixed_sums

    def _slots(self, array: np.ndarray) -> Iterator[tuple[np.ndarray, list[str], np.ndarray, np.ndarray,
                                                          np.ndarray]]:
        """Per resolution in the batch: its rows, the fixed ops' keys, the flat slot keys (stage × first/later
        block × kernel × expand), each block's (n, 20) index into them, and which blocks are active."""
        res, slot_all, active_all = self._blocks(array)
        for r in np.unique(res):
            if int(r) not in RESOLUTIONS:
                raise ConfigError(f"OFA-MobileNetV3 resolutions are 128..224 step 4, got {int(r)}")
            rows = np.flatnonzero(res == r) if r != res[0] or (res != r).any() else np.arange(res.size)
            fixed, slots = self._slot_inventory(int(r))
            yield rows, fixed, slots.ravel(), slot_all[rows], active_all[rows]

    @staticmethod
    def _blocks(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Checked k/e/d/r rows as: resolutions (n,), each block's index into a resolution's flat slot keys
        (stage × first/later block × kernel × expand) (n, 20), and which blocks are active (n, 20)."""
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[1] != 46 or not np.issubdtype(array.dtype, np.integer):
            raise ConfigError(f"OFA arch arrays are integers with 46 columns (20 k, 20 e, 5 d, r), got "
                              f"{array.dtype} {array.shape}")
        ks, es, depth, res = array[:, :20], array[:, 20:40], array[:, 40:45], array[:, 45]
        # one pass for "outside 0..7" (a negative shifted right stays negative), then the index tables; these
        # checks were half of a small batch's table sum
        if array.size and (array[:, :45] >> 3).any():
            raise ConfigError("OFA archs take kernels from {3,5,7}, expands from {3,4,6}, depths from {2,3,4}")
        k_idx, e_idx = _K_INDEX[ks], _E_INDEX[es]
        if array.size and ((k_idx | e_idx).min() < 0 or not _D_VALID[depth].all()):
            raise ConfigError("OFA archs take kernels from {3,5,7}, expands from {3,4,6}, depths from {2,3,4}")
        slot_all = _SLOT_BASE[None, :] + k_idx * len(EXPANDS) + e_idx
        active_all = _BLOCK_POSITION[None, :] < depth[:, _BLOCK_STAGE]
        return res, slot_all, active_all

    @functools.lru_cache(maxsize=32)  # noqa: B019 - spaces are few and long-lived
    def _slot_inventory(self, r: int) -> tuple[list[str], np.ndarray]:
        """Keys of the fixed ops at resolution ``r`` and of the block in every slot (stage × first/later
        block × kernel × expand)."""
        head, h = self._head(r)
        slots = np.empty((len(_STAGES), 2, len(KERNELS), len(EXPANDS)), dtype=object)
        cin = self.first_block
        for stage, ((_, stride, act, se), cout) in enumerate(zip(_STAGES, self.stage_widths, strict=True)):
            for later, (s, block_in) in enumerate(((stride, cin), (1, cout))):
                for ki, k in enumerate(KERNELS):
                    for ei, e in enumerate(EXPANDS):
                        slots[stage, later, ki, ei] = self._block(h, block_in, cout, k, s, e, act, se).key
                h = -(-h // s)
            cin = cout
        return [op.key for op in head + self._tail(h)], slots


def _lookup(mapping: Mapping[str, Any], key: str) -> Any:
    try:
        return mapping[key]
    except KeyError:
        raise ConfigError(f"no latency for op {key!r}") from None


def _require_all(ok: np.ndarray, active: np.ndarray, keys: np.ndarray, slot: np.ndarray) -> None:
    missing = active & ~ok
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise ConfigError(f"no latency for op {keys[slot[i, j]]!r}")
