from __future__ import annotations

from pathlib import Path

import pytest

from tailorkit.core import (
    BenchmarkSettings,
    DeviceInfo,
    Latency,
    LatencyRecord,
    LatencyTable,
    OpSpec,
    StorageError,
    TableError,
)
from tailorkit.profiler.store import TableStore

from .conftest import NOTE10, needs_shared

KEY_A = "Conv-input:128x128x3-output:64x64x16"
KEY_B = "expanded_conv-input:64x64x16-output:64x64x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0"


def _table() -> LatencyTable:
    return LatencyTable("t", {KEY_A: Latency.from_samples([0.5, 0.52, 0.51, 0.49, 0.5, 0.5, 0.53, 0.48, 0.5]),
                              KEY_B: Latency(mean=0.2, std=0.01, n=7, median=0.19)})


def _device(name: str = "cpu") -> DeviceInfo:
    return DeviceInfo(name=name, kind="onnxruntime", hardware="x", runtime="onnxruntime", runtime_version="1",
                      tailorkit_version="0.1", state={"freq_mhz": "1"})


@needs_shared(NOTE10)
@pytest.mark.parametrize("resolution", [160, 176, 192, 208, 224])
def test_ofa_note10_yaml_round_trips_byte_for_byte(tmp_path: Path, resolution: int) -> None:
    source = NOTE10 / f"{resolution}_lookup_table.yaml"
    table = LatencyTable.read(source)
    assert len(table) == 96
    table.write(tmp_path / "out.yaml")
    assert (tmp_path / "out.yaml").read_bytes() == source.read_bytes()


@needs_shared(NOTE10)
def test_note10_round_trips_through_the_store(store_url: str) -> None:
    source = NOTE10 / "160_lookup_table.yaml"
    with TableStore(store_url) as store:
        store.import_table(LatencyTable.read(source, "note10"), _device("note10"), BenchmarkSettings())
        assert store.table("note10").dumps("yaml") == source.read_text()


@pytest.mark.parametrize("fmt", ["yaml", "csv", "json"])
def test_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    table = _table()
    path = table.write(tmp_path / f"t.{fmt}")
    back = LatencyTable.read(path, "t")
    assert set(back.entries) == set(table.entries)
    for key, lat in table.entries.items():
        assert back[key].mean == lat.mean and back[key].std == lat.std and back[key].n == lat.n
        if fmt != "yaml":
            assert back[key].median == lat.median
    if fmt == "json":
        assert back[KEY_A].samples == table[KEY_A].samples


@pytest.mark.parametrize("text, match", [
    ("bogus-key:\n  count: 1\n  mean: 0.1\n  std: 0.0\n", "malformed op key 'bogus-key'"),
    (f"{KEY_A}:\n  count: 3\n  std: 0.1\n", "has no mean"),
    (f"{KEY_A}:\n  count: 3\n  mean: fast\n  std: 0.1\n", "mean must be a number"),
    (f"{KEY_A}:\n  count: 3\n  mean: -1\n  std: 0.1\n", "mean must be a number"),
    (f"{KEY_A}: 3\n", "must be a mapping"),
    ("[1, 2]\n", "must map op keys"),
    ("a: [b\n", "not valid YAML"),
])
def test_bad_yaml_tables_are_rejected(text: str, match: str) -> None:
    with pytest.raises(TableError, match=match):
        LatencyTable.loads(text, "yaml", "t")


def test_missing_key_lookup_names_the_op() -> None:
    with pytest.raises(TableError, match="no entry for op 'Logits"):
        _table()["Logits-input:1x1x1280-output:1000"]


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("old")
    with pytest.raises(TableError):
        _table().write(path, "parquet")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_store_appends_and_views_the_latest(store_url: str) -> None:
    settings = BenchmarkSettings(runs=5)
    with TableStore(store_url) as store:
        store.ensure_table("tab", space="ofa-mbv3")
        for mean in (1.0, 2.0):
            store.add(LatencyRecord("tab", KEY_A, _device(), settings, Latency(mean=mean, std=0.0, n=5),
                                    op=OpSpec.from_key(KEY_A)))
        assert store.count("tab") == 2  # append-only
        assert store.measured_keys("tab", _device().fingerprint, settings.fingerprint) == {KEY_A}
        assert store.measured_keys("tab", _device().fingerprint, BenchmarkSettings().fingerprint) == set()
        table = store.table("tab")
        assert table[KEY_A].mean == 2.0 and table.settings == settings and table.device.name == "cpu"
        with pytest.raises(TableError, match="no table 'nope'.*tables: tab"):
            store.table("nope")
        with pytest.raises(TableError, match="no variant for device"):
            store.table("tab", device="pixel")


def test_import_is_all_or_nothing(store_url: str) -> None:
    with TableStore(store_url) as store:
        store.import_table(_table(), _device(), BenchmarkSettings())
        with pytest.raises(TableError, match="already exists"):
            store.import_table(_table(), _device(), BenchmarkSettings())
        assert store.count("t") == 2


@pytest.mark.parametrize("url, match", [
    ("sqlite:////nonexistent-dir/x.db", "does not exist"),
    ("not a url", "not a database URL"),
    ("nosuchdb://host/db", "cannot open the database"),
])
def test_unopenable_store_urls(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match):
        TableStore(url)


def test_read_only_open_does_not_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        TableStore(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    assert not (tmp_path / "missing.db").exists()
