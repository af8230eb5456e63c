from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tailorkit.core import BenchmarkSettings, ConfigError, LatencyTable
from tailorkit.devices import OnnxRuntimeDevice
from tailorkit.profiler import TableStore, build_table, table_name
from tailorkit.profiler.tables import build_table as build_ops
from tailorkit.spaces import OFAMobileNetV3Space

FAST = BenchmarkSettings(warmup=1, runs=3, number=1)


def _built_keys(space: OFAMobileNetV3Space, r: int) -> set[str]:
    """What a table build measures: the space's ops and the digits classifier the exported models end in."""
    return {op.key for op in space.all_ops(r)} | {op.key for op in space.with_classes(10).all_ops(r)}


def test_build_export_import_equal(tmp_path: Path, store_url: str) -> None:
    ops = OFAMobileNetV3Space().all_ops(128)[::16]
    events = []
    with TableStore(store_url) as store:
        report = build_ops(ops, "t", OnnxRuntimeDevice(), store, FAST, space="ofa-mbv3", progress=events.append)
        assert report.measured == len(ops) and report.already == 0
        assert [e.done for e in events] == list(range(len(ops) + 1))
        assert 0 < report.overhead < 1 and report.timed_ms > 0
        table = store.table("t")
        assert set(table.entries) == {op.key for op in ops}
        assert all(lat.mean > 0 and lat.n_total == 3 for lat in table.entries.values())
        for fmt in ("yaml", "csv", "json"):
            path = table.write(tmp_path / f"t.{fmt}")
            back = LatencyTable.read(path, f"t-{fmt}")
            assert {k: (v.mean, v.std, v.n) for k, v in back.entries.items()} == \
                   {k: (v.mean, v.std, v.n) for k, v in table.entries.items()}
            store.import_table(back, table.device, table.settings)
            assert store.table(f"t-{fmt}").dumps("yaml") == table.dumps("yaml")

        again = build_ops(ops, "t", OnnxRuntimeDevice(), store, FAST, space="ofa-mbv3")
        assert again.measured == 0 and again.already == len(ops)
        other = build_ops(ops[:2], "t", OnnxRuntimeDevice(), store, BenchmarkSettings(warmup=1, runs=4, number=1),
                          space="ofa-mbv3")
        assert other.measured == 2  # other settings are another variant, measured afresh


def _rows(db: Path) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "select key, device_fingerprint, settings_fingerprint from measurements"))]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "resume.db"
    args = [sys.executable, "-m", "tailorkit.cli", "table", "build", "--resolution", "128", "--db",
            f"sqlite:///{db}", "--warmup", "1", "--runs", "3", "--number", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while len(_rows(db)) < 10:
            assert proc.poll() is None, "the build finished before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _rows(db)
    total = len(_built_keys(OFAMobileNetV3Space(), 128))
    assert 10 <= len(partial) < total

    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{total - len(partial)} measured now, {len(partial)} already" in " ".join(done.stdout.split())
    rows = _rows(db)
    assert len(rows) == total and len(set(rows)) == total  # complete, nothing measured twice
    with TableStore(f"sqlite:///{db}") as store:
        assert set(store.table(table_name("ofa-mbv3", 1.0, 128)).entries) == _built_keys(OFAMobileNetV3Space(), 128)


def test_facade_builds_width_12(tmp_path: Path) -> None:
    report = build_table("ofa-mbv3", resolution=128, width=1.2, store=f"sqlite:///{tmp_path / 'w.db'}",
                         settings=BenchmarkSettings(warmup=0, runs=1, number=1), name="w12")
    # 96 ops of the space, and the 10-class classifier besides its 1000-class one
    assert report.total == 97 and report.measured == 97
    with TableStore(f"sqlite:///{tmp_path / 'w.db'}") as store:
        keys = set(store.table("w12").entries)
    assert keys == _built_keys(OFAMobileNetV3Space(width=1.2), 128)
    assert sum(k.startswith("Logits-") for k in keys) == 2
    # no extra heads: the space's ops alone; a nonsense class count is refused before anything is measured
    report = build_table("ofa-mbv3", resolution=128, width=1.2, store=f"sqlite:///{tmp_path / 'w.db'}",
                         settings=BenchmarkSettings(warmup=0, runs=1, number=1), name="plain", classes=())
    assert report.total == 96
    with pytest.raises(ConfigError, match="class counts"):
        build_table("ofa-mbv3", resolution=128, store=f"sqlite:///{tmp_path / 'x.db'}", classes=(0,))
    assert not (tmp_path / "x.db").exists()
