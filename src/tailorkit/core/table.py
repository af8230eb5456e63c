"""LatencyTable: op key → Latency for one device and space, with OFA YAML, CSV and JSON files."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tailorkit.core.errors import TableError
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpSpec

FORMATS = ("yaml", "csv", "json")
_CSV_COLUMNS = ("key", "mean", "std", "n", "median", "p90", "min", "max", "n_total", "number")


@dataclass(frozen=True)
class LatencyTable:
    name: str
    entries: Mapping[str, Latency]
    space: str | None = None
    device: DeviceInfo | None = None
    settings: BenchmarkSettings | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Latency:
        try:
            return self.entries[key]
        except KeyError:
            raise TableError(f"table {self.name!r} has no entry for op {key!r}") from None

    def ops(self) -> list[OpSpec]:
        return [OpSpec.from_key(k) for k in self.entries]

    # ------------------------------------------------------------------------------------------ writing

    def dumps(self, fmt: str) -> str:
        if fmt == "yaml":
            # OFA's layout: sorted keys, each with count/mean/std in ms (PyYAML's defaults reproduce it byte
            # for byte, which is what makes the Note10 tables round-trip unchanged).
            data = {k: {"count": lat.n, "mean": lat.mean, "std": lat.std} for k, lat in self.entries.items()}
            return yaml.safe_dump(data, default_flow_style=False, sort_keys=True)
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(_CSV_COLUMNS)
            for key, lat in sorted(self.entries.items()):
                row = lat.summary()
                writer.writerow([key] + ["" if row[c] is None else repr(row[c]) for c in _CSV_COLUMNS[1:]])
            return buf.getvalue()
        if fmt == "json":
            return json.dumps({
                "format": "tailorkit-latency-table", "version": 1, "name": self.name, "space": self.space,
                "unit": "ms",
                "device": self.device.to_dict() if self.device else None,
                "settings": self.settings.to_dict() if self.settings else None,
                "meta": dict(self.meta),
                "entries": {k: lat.to_dict() for k, lat in sorted(self.entries.items())},
            }, indent=1)
        raise TableError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")

    def write(self, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
        """Write atomically: a failed write leaves an existing file untouched."""
        path = Path(path)
        text = self.dumps(fmt or format_of(path))
        atomic_write_text(path, text)
        return path

    # ------------------------------------------------------------------------------------------ reading

    @classmethod
    def loads(cls, text: str, fmt: str, name: str, *, space: str | None = None) -> LatencyTable:
        if fmt == "yaml":
            return cls(name=name, entries=_entries_from_yaml(text), space=space)
        if fmt == "csv":
            return cls(name=name, entries=_entries_from_csv(text), space=space)
        if fmt == "json":
            return _table_from_json(text, name, space)
        raise TableError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")

    @classmethod
    def read(cls, path: str | os.PathLike[str], name: str | None = None, *, fmt: str | None = None,
             space: str | None = None) -> LatencyTable:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # spreadsheets like to prepend a BOM
        except FileNotFoundError:
            raise TableError(f"table file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TableError(f"cannot read table file {str(path)!r}: {exc}") from None
        return cls.loads(text, fmt or format_of(path), name or path.stem, space=space)


def format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"yml": "yaml"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise TableError(f"cannot tell the table format of {str(path)!r}; use a .yaml, .csv or .json name "
                         "or say --format")
    return fmt


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: readers see the old file or the new one, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise TableError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TableError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _number(value: Any, what: str, key: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise TableError(f"entry {key!r}: {what} must be a number >= 0, got {value!r}")
    if integer and int(value) != value:
        raise TableError(f"entry {key!r}: {what} must be a whole number, got {value!r}")
    return value


def _latency_entry(key: str, mean: Any, std: Any, count: Any) -> Latency:
    OpSpec.from_key(key)  # malformed keys are rejected on the way in, naming the key
    if mean is None:
        raise TableError(f"entry {key!r} has no mean")
    n = int(_number(count, "count", key, integer=True)) if count is not None else 1
    if n < 1:
        raise TableError(f"entry {key!r}: count must be >= 1, got {count!r}")
    return Latency(mean=float(_number(mean, "mean", key)),
                   std=float(_number(std, "std", key)) if std is not None else 0.0, n=n)


def _entries_from_yaml(text: str) -> dict[str, Latency]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TableError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise TableError("an OFA YAML table must map op keys to {count, mean, std}")
    entries = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            raise TableError(f"entry {key!r} must be a mapping with count, mean, std")
        unknown = set(value) - {"count", "mean", "std"}
        if unknown:
            raise TableError(f"entry {key!r} has unknown fields {sorted(unknown)}")
        entries[str(key)] = _latency_entry(str(key), value.get("mean"), value.get("std"), value.get("count"))
    return entries


def _entries_from_csv(text: str) -> dict[str, Latency]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "key" not in reader.fieldnames or "mean" not in reader.fieldnames:
        raise TableError("a CSV table needs at least the columns key and mean")
    entries = {}
    for line, row in enumerate(reader, start=2):
        key = row.get("key") or ""

        def num(column: str, cast: type = float, row: dict = row, line: int = line, key: str = key) -> Any:
            raw = (row.get(column) or "").strip()
            if not raw:
                return None
            try:
                return cast(raw)
            except ValueError:
                raise TableError(f"line {line}, entry {key!r}: {column} {raw!r} is not a number") from None

        base = _latency_entry(key, num("mean"), num("std"), num("n", int))
        entries[key] = Latency(mean=base.mean, std=base.std, n=base.n, median=num("median"), p90=num("p90"),
                               min=num("min"), max=num("max"), n_total=num("n_total", int),
                               number=num("number", int) or 1)
    if not entries:
        raise TableError("the CSV table has no rows")
    return entries


def _table_from_json(text: str, name: str, space: str | None) -> LatencyTable:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != "tailorkit-latency-table":
        raise TableError("not a tailorkit JSON table (expected \"format\": \"tailorkit-latency-table\")")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, dict):
        raise TableError("a tailorkit JSON table needs \"entries\": {key: {...}}")
    entries = {}
    for key, value in raw_entries.items():
        if not isinstance(value, dict):
            raise TableError(f"entry {key!r} must be an object")
        base = _latency_entry(key, value.get("mean"), value.get("std"), value.get("n"))
        try:
            entries[key] = Latency.from_dict({**value, "mean": base.mean, "std": base.std, "n": base.n})
        except (TypeError, ValueError) as exc:
            raise TableError(f"entry {key!r}: {exc}") from None
    if not entries:
        raise TableError("the JSON table has no entries")
    try:
        device = DeviceInfo.from_dict(data["device"]) if data.get("device") else None
        settings = BenchmarkSettings.from_dict(data["settings"]) if data.get("settings") else None
    except (TypeError, ValueError) as exc:
        raise TableError(f"bad device or settings block: {exc}") from None
    return LatencyTable(name=name, entries=entries, space=space or data.get("space"), device=device,
                        settings=settings, meta=data.get("meta") or {})
