from __future__ import annotations

import json
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


def test_json_entries_must_be_an_object() -> None:
    with pytest.raises(TableError, match="entries"):
        LatencyTable.loads('{"format": "tailorkit-latency-table", "entries": [1, 2]}', "json", "t")
    with pytest.raises(TableError, match="median"):
        entries = {KEY_A: {"mean": 1, "std": 0, "n": 1, "median": "fast"}}
        LatencyTable.loads(json.dumps({"format": "tailorkit-latency-table", "entries": entries}), "json", "t")


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"\ufeffkey,mean,std,n\n{KEY_A},0.5,0.01,10\n", encoding="utf-8")
    assert LatencyTable.read(path)[KEY_A].mean == 0.5


def test_unwritable_destinations_are_table_errors(tmp_path: Path) -> None:
    (tmp_path / "adir.yaml").mkdir()
    for target in (tmp_path / "adir.yaml", Path("/proc/tailor-test.yaml"), Path("/dev/null/x.yaml")):
        with pytest.raises(TableError, match="cannot write"):
            _table().write(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.yaml"]  # no temporary files left behind


def test_written_tables_are_readable_by_others(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = _table().write(tmp_path / "t.yaml")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_store_errors_inside_a_transaction_are_storage_errors(tmp_path: Path) -> None:
    import sqlalchemy as sa

    with TableStore(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.ensure_table("tab")
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE measurements"))
        with pytest.raises(StorageError, match="no such table"):
            store.add(LatencyRecord("tab", KEY_A, _device(), BenchmarkSettings(), Latency(mean=1.0, std=0.0, n=1)))


def test_a_table_name_keeps_its_meaning(store_url: str) -> None:
    with TableStore(store_url) as store:
        store.ensure_table("tab", space="ofa-mbv3", meta={"resolution": 128})
        store.ensure_table("tab", space="ofa-mbv3", meta={"resolution": 128})
        with pytest.raises(TableError, match="choose another --name"):
            store.ensure_table("tab", space="ofa-mbv3", meta={"resolution": 132})
        with pytest.raises(TableError, match="already exists"):  # a table row without measurements yet
            store.import_table(_table().__class__("tab", _table().entries), _device(), BenchmarkSettings())


def test_variants_are_picked_explicitly(store_url: str) -> None:
    a, b = BenchmarkSettings(runs=5), BenchmarkSettings(runs=7)
    with TableStore(store_url) as store:
        store.ensure_table("tab")
        store.add(LatencyRecord("tab", KEY_A, _device(), a, Latency(mean=1.0, std=0.0, n=5)))
        store.add(LatencyRecord("tab", KEY_A, _device(), b, Latency(mean=3.0, std=0.0, n=7)))
        with pytest.raises(TableError, match="2 variants"):
            store.table("tab")
        assert store.table("tab", settings=a.fingerprint[:6])[KEY_A].mean == 1.0
        assert store.table("tab", device=_device().fingerprint[:8], settings=b.fingerprint)[KEY_A].mean == 3.0
