"""Loaders for the public latency datasets in ``../shared/data`` (see its README): HELP's NAS-Bench-201 and
FBNet tables (27 devices each) and HAT's 7 transformer tables.

Every loader returns a ``LatencyDataset``: arch identifiers, the space's encoding as ``X`` and one latency
vector per device, validated on load (missing columns, NaN or negative latencies raise ``ConfigError`` naming
the file and column) so a predictor never trains on a silently broken table. Only ``csv`` and numpy are used.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.spaces.fbnet import FBNetSpace
from tailorkit.spaces.hat import FEATURES as HAT_FEATURES
from tailorkit.spaces.nb201 import NB201Space
from tailorkit.spaces.ofa_mbv3 import OFAMobileNetV3Space

log = logging.getLogger(__name__)

ENV_VAR = "TAILOR_SHARED_DATA"
_MARKERS = ("help", "hat")  # a ``shared/data`` folder without either is someone else's

NB201_FILE = Path("help") / "nasbench201_latency_ms.csv"
FBNET_FILE = Path("help") / "fbnet_latency_ms.csv"
EMBEDDING_FILE = Path("help") / "hardware_embedding_index.json"
HAT_DIR = Path("hat")
_HAT_SUFFIX = "_all.csv"
_HAT_TARGETS = ("latency_mean_encoder", "latency_mean_decoder")

HELP_SPLITS: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "nb201": MappingProxyType({
        "train": ("1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
                  "essential_ph_1", "samsung_s7"),
        "valid": ("titanx_1", "titanx_32", "titanx_256", "gold_6240"),
        "test": ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss"),
    }),
    "fbnet": MappingProxyType({
        "train": ("1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
                  "essential_ph_1", "samsung_s7"),
        "valid": ("titanx_1", "titanx_32", "titanx_64", "gold_6240"),
        "test": ("fpga", "raspi4", "eyeriss"),
    }),
})
"""HELP's meta-train / meta-valid / meta-test device splits (the paper's Tables 3 and 2), keyed by space then
split, so results are comparable with HELP's. On FBNet HELP meta-tests on three devices only: the NB201 test
devices titan_rtx, gold_6226 and pixel2 are in neither of its FBNet splits."""

# our space names → the keys HELP uses in hardware_embedding_index.json
_EMBEDDING_KEYS = {"nb201": "nasbench201", "nasbench201": "nasbench201", "fbnet": "fbnet", "ofa": "ofa"}


def _candidates() -> list[Path]:
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    seen: list[Path] = []
    for start in starts:
        for ancestor in (start, *start.parents):
            path = ancestor / "shared" / "data"
            if path not in seen:
                seen.append(path)
    return seen


def shared_data_dir() -> Path:
    """``$TAILOR_SHARED_DATA`` if set; otherwise the first ``shared/data`` folder (holding ``help/`` or
    ``hat/``) next to an ancestor of this package or of the working directory. That finds ``<project>/../
    shared/data`` both for an editable install (the package lives in ``<project>/src``) and when running from
    the project with an installed package."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConfigError(f"${ENV_VAR} is set to {env!r}, which is not a directory")
        return path
    for path in _candidates():
        if path.is_dir() and any((path / marker).is_dir() for marker in _MARKERS):
            return path
    raise ConfigError(f"no shared latency data found: set ${ENV_VAR} to the data folder, or place it at "
                      f"<project>/../shared/data (looked above {Path(__file__).resolve().parent} and {Path.cwd()})")


@dataclass(frozen=True, eq=False)
class LatencyDataset:
    """One table: row ``i`` is ``archs[i]``, encoded as ``X[i]``, with latency ``targets[device][i]`` (``unit``).
    ``targets`` keys are devices for HELP and ``latency`` / ``encoder`` / ``decoder`` for HAT."""

    name: str
    space: str
    archs: list[str]
    X: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    unit: str = "ms"

    def __post_init__(self) -> None:
        n = len(self.archs)
        if self.X.shape[0] != n or any(t.shape != (n,) for t in self.targets.values()):
            shapes = {k: v.shape for k, v in self.targets.items()}
            raise ConfigError(f"dataset {self.name}: {n} archs but X {self.X.shape} and targets {shapes}")

    def __len__(self) -> int:
        return len(self.archs)

    @property
    def devices(self) -> list[str]:
        return list(self.targets)

    def y(self, device: str) -> np.ndarray:
        try:
            return self.targets[device]
        except KeyError:
            raise ConfigError(f"dataset {self.name} has no device {device!r}; known: "
                              f"{', '.join(self.targets)}") from None


# ------------------------------------------------------------------------------------------------ reading


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise ConfigError(f"latency data file {path} is missing (data folder: see ${ENV_VAR})")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ConfigError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    bad = [i + 2 for i, row in enumerate(body) if len(row) != len(header)]
    if bad:
        raise ConfigError(f"{path}: {len(bad)} rows do not have {len(header)} fields (first: line {bad[0]})")
    return header, body


def _require(path: Path, header: Sequence[str], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConfigError(f"{path} lacks column(s) {', '.join(missing)}")


def _text_column(header: Sequence[str], body: Sequence[Sequence[str]], column: str) -> list[str]:
    j = header.index(column)
    return [row[j] for row in body]


def _numeric_columns(path: Path, header: Sequence[str], body: Sequence[Sequence[str]],
                     columns: Sequence[str], *, latency: bool) -> dict[str, np.ndarray]:
    """Columns as float64; for latencies also reject NaN and negative values, naming file and column."""
    out: dict[str, np.ndarray] = {}
    for column in columns:
        try:
            values = np.asarray(_text_column(header, body, column), dtype=np.float64)
        except ValueError as exc:
            raise ConfigError(f"{path}: column {column} is not numeric ({exc})") from None
        if not np.isfinite(values).all():
            raise ConfigError(f"{path}: column {column} has {int((~np.isfinite(values)).sum())} NaN/inf values")
        if latency and (values < 0).any():
            raise ConfigError(f"{path}: column {column} has {int((values < 0).sum())} negative latencies")
        out[column] = values
    return out


# ------------------------------------------------------------------------------------------------ HELP


def load_nb201() -> LatencyDataset:
    """HELP's NAS-Bench-201 table: 15625 cells, row ``i`` = NAS-Bench-201 index ``i`` (rows are reordered by
    ``nb201_index`` if needed, since the hardware-embedding archs are given as indices), 27 device columns."""
    path = shared_data_dir() / NB201_FILE
    header, body = _read_csv(path)
    _require(path, header, ("nb201_index", "arch_str"))
    devices = [c for c in header if c not in ("nb201_index", "arch_str")]
    if not devices:
        raise ConfigError(f"{path} has no device columns")
    index = _numeric_columns(path, header, body, ["nb201_index"], latency=False)["nb201_index"]
    if not np.array_equal(np.sort(index), np.arange(len(body))):
        raise ConfigError(f"{path}: column nb201_index is not a permutation of 0..{len(body) - 1}")
    order = np.argsort(index, kind="stable")
    body = [body[i] for i in order]
    archs = _text_column(header, body, "arch_str")
    try:
        X = NB201Space().encode_strings(archs)
    except ConfigError as exc:
        raise ConfigError(f"{path}: column arch_str: {exc}") from None
    targets = _numeric_columns(path, header, body, devices, latency=True)
    log.debug("loaded %s: %d archs, %d devices", path, len(archs), len(targets))
    return LatencyDataset("help/nb201", "nb201", archs, X, targets)


def load_fbnet() -> LatencyDataset:
    """HELP's FBNet table: 5000 sampled archs (``op_idx_list`` strings), 27 device columns; the per-layer block
    names ``L00..L21`` repeat ``op_idx_list`` and are not targets."""
    path = shared_data_dir() / FBNET_FILE
    header, body = _read_csv(path)
    _require(path, header, ("op_idx_list",))
    devices = [c for c in header if c != "op_idx_list" and not (len(c) == 3 and c[0] == "L" and c[1:].isdigit())]
    if not devices:
        raise ConfigError(f"{path} has no device columns")
    archs = _text_column(header, body, "op_idx_list")
    try:
        X = FBNetSpace().encode_strings(archs)
    except ConfigError as exc:
        raise ConfigError(f"{path}: column op_idx_list: {exc}") from None
    targets = _numeric_columns(path, header, body, devices, latency=True)
    log.debug("loaded %s: %d archs, %d devices", path, len(archs), len(targets))
    return LatencyDataset("help/fbnet", "fbnet", archs, X, targets)


def hardware_embedding_index(space: str) -> list[int]:
    """The 10 reference archs (row indices of the space's table) whose latencies form HELP's hardware
    embedding. ``space`` is ``nb201`` (or HELP's ``nasbench201``), ``fbnet`` or ``ofa``."""
    path = shared_data_dir() / EMBEDDING_FILE
    key = _EMBEDDING_KEYS.get(space)
    if key is None:
        raise ConfigError(f"no hardware-embedding archs for space {space!r}; known: {', '.join(_EMBEDDING_KEYS)}")
    if not path.is_file():
        raise ConfigError(f"latency data file {path} is missing (data folder: see ${ENV_VAR})")
    try:
        data = json.loads(path.read_text())
        indices = data[key]
        out = [int(i) for i in indices]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: no valid index list under {key!r} ({exc!r})") from None
    if any(i < 0 for i in out) or out != list(indices):
        raise ConfigError(f"{path}: {key!r} must list non-negative integer indices, got {indices!r}")
    return out


# ------------------------------------------------------------------------------------------------ HAT


def hat_files() -> list[str]:
    """Names (file stems without ``_all``) of the HAT tables present, e.g. ``wmt14ende_cpu_xeon``."""
    folder = shared_data_dir() / HAT_DIR
    if not folder.is_dir():
        raise ConfigError(f"HAT latency folder {folder} is missing (data folder: see ${ENV_VAR})")
    return sorted(p.name[: -len(_HAT_SUFFIX)] for p in folder.glob(f"*{_HAT_SUFFIX}"))


def load_hat(name: str) -> LatencyDataset:
    """One HAT table: ``X`` = HAT's 10 predictor features (float64, as ``HATSpace.encode`` gives them),
    targets ``latency`` (encoder + decoder mean, HAT's predictor target), ``encoder`` and ``decoder`` (ms).
    HAT stores no arch, only the lossy features, so ``archs`` are row ids ``<name>:<row>``."""
    known = hat_files()
    stem = name[: -len(_HAT_SUFFIX)] if name.endswith(_HAT_SUFFIX) else name
    if stem not in known:
        raise ConfigError(f"unknown HAT table {name!r}; known: {', '.join(known) or 'none'}")
    path = shared_data_dir() / HAT_DIR / f"{stem}{_HAT_SUFFIX}"
    header, body = _read_csv(path)
    _require(path, header, (*HAT_FEATURES, *_HAT_TARGETS))
    features = _numeric_columns(path, header, body, HAT_FEATURES, latency=False)
    X = np.column_stack([features[c] for c in HAT_FEATURES])
    lat = _numeric_columns(path, header, body, _HAT_TARGETS, latency=True)
    encoder, decoder = lat["latency_mean_encoder"], lat["latency_mean_decoder"]
    targets = {"latency": encoder + decoder, "encoder": encoder, "decoder": decoder}
    archs = [f"{stem}:{i}" for i in range(len(body))]
    log.debug("loaded %s: %d rows", path, len(archs))
    return LatencyDataset(f"hat/{stem}", "hat", archs, X, targets)


# ------------------------------------------------------------------------------------------- user CSVs

ENCODINGS = ("nb201", "fbnet", "hat", "ofa-mbv3")
_ARCH_COLUMNS = {"nb201": ("arch_str", "arch"), "fbnet": ("op_idx_list", "arch"), "ofa-mbv3": ("arch",)}


def encode_archs(encoding: str, archs: Sequence[str], *, width: float = 1.0) -> np.ndarray:
    """Encodings of archs written as text: NB201 arch strings, FBNet op-index lists, OFA-MBv3 JSON objects
    (``{"ks": [...], "e": [...], "d": [...], "r": 224}``) or HAT's 10 comma-separated features."""
    if encoding == "nb201":
        return NB201Space().encode_strings(list(archs))
    if encoding == "fbnet":
        return FBNetSpace().encode_strings(list(archs))
    if encoding == "ofa-mbv3":
        space = OFAMobileNetV3Space(width=width)
        return space.to_array([space.arch_from_json(text) for text in archs]).astype(np.float64)
    if encoding == "hat":
        try:
            X = np.array([[float(v) for v in text.split(",")] for text in archs], dtype=np.float64)
        except ValueError as exc:
            raise ConfigError(f"HAT archs are {len(HAT_FEATURES)} comma-separated numbers ({exc})") from None
        if X.ndim != 2 or X.shape[1] != len(HAT_FEATURES):
            raise ConfigError(f"HAT archs are the {len(HAT_FEATURES)} features {', '.join(HAT_FEATURES)}")
        return X
    raise ConfigError(f"unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")


def read_csv_dataset(path: str | Path, encoding: str) -> LatencyDataset:
    """A user's CSV of archs and measured latencies: one arch column (``arch_str``/``op_idx_list``/``arch``, or
    HAT's 10 feature columns) and any number of numeric latency columns (ms), one per device. Columns that
    are not numbers are ignored; latencies are validated when a column is used as a target."""
    path = Path(path)
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    header, body = _read_csv(path)
    if encoding == "hat":
        _require(path, header, HAT_FEATURES)
        archs = [",".join(row[header.index(f)] for f in HAT_FEATURES) for row in body]
        used = set(HAT_FEATURES)
    else:
        column = next((c for c in _ARCH_COLUMNS[encoding] if c in header), None)
        if column is None:
            raise ConfigError(f"{path} needs an arch column named {' or '.join(_ARCH_COLUMNS[encoding])}")
        archs = _text_column(header, body, column)
        used = {column, "nb201_index"}
    try:
        X = encode_archs(encoding, archs)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    targets: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if name in used:
            continue
        try:
            targets[name] = np.array([float(row[j]) if row[j].strip() else np.nan for row in body])
        except ValueError:
            continue  # a label or comment column
    if encoding == "hat" and {"latency_mean_encoder", "latency_mean_decoder"} <= set(targets):
        targets.setdefault("latency", targets["latency_mean_encoder"] + targets["latency_mean_decoder"])
    return LatencyDataset(path.stem, encoding, archs, X, targets)
