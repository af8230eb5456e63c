"""TableStore: append-only measurements in any SQLAlchemy database; a latency table is a view over them.

Each measurement is its own committed transaction (SQLite in WAL mode), so a killed build loses at most the
op it was measuring, and a rerun skips every key already stored for the same device fingerprint and settings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from tailorkit.core.config import DEFAULT_STORE_URL
from tailorkit.core.errors import StorageError, TableError
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, LatencyRecord
from tailorkit.core.table import LatencyTable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_metadata = sa.MetaData()

_tables = sa.Table(
    "tables", _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("space", sa.String(100)),
    sa.Column("meta_json", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.Float, nullable=False),
)
_devices = sa.Table(
    "devices", _metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("info_json", sa.Text, nullable=False),
)
_measurements = sa.Table(
    "measurements", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(200), sa.ForeignKey("tables.name"), nullable=False),
    sa.Column("key", sa.String(400), nullable=False),
    sa.Column("device_fingerprint", sa.String(32), sa.ForeignKey("devices.fingerprint"), nullable=False),
    sa.Column("settings_fingerprint", sa.String(32), nullable=False),
    sa.Column("settings_json", sa.Text, nullable=False),
    sa.Column("device_state_json", sa.Text, nullable=False),
    sa.Column("op_json", sa.Text),
    sa.Column("mean", sa.Float, nullable=False),
    sa.Column("std", sa.Float, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("median", sa.Float),
    sa.Column("p90", sa.Float),
    sa.Column("min", sa.Float),
    sa.Column("max", sa.Float),
    sa.Column("n_total", sa.Integer),
    sa.Column("number", sa.Integer, nullable=False, default=1),
    sa.Column("samples_json", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_measurements_lookup", "table_name", "device_fingerprint", "settings_fingerprint", "key"),
)
_schema = sa.Table(
    "schema_info", _metadata,
    sa.Column("version", sa.Integer, primary_key=True),
)


@dataclass(frozen=True)
class TableVariant:
    """One (table, device, settings) combination in the store: what ``tailor table show`` lists."""

    name: str
    space: str | None
    device_name: str
    device_fingerprint: str
    settings_fingerprint: str
    entries: int
    last_measured: float
    meta: dict[str, Any]


class TableStore:
    """``TableStore()`` opens ``sqlite:///tailor.db``; any SQLAlchemy URL works the same. With
    ``create=False`` a missing SQLite file is an error instead of being created (read-only commands)."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        self.url = url or DEFAULT_STORE_URL
        self.engine = _open_engine(self.url, create)
        try:
            _metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                version = conn.execute(sa.select(sa.func.max(_schema.c.version))).scalar()
                if version is None:
                    conn.execute(_schema.insert().values(version=SCHEMA_VERSION))
                elif version > SCHEMA_VERSION:
                    raise StorageError(f"{self.url}: store schema v{version} is newer than this tailorkit "
                                       f"(v{SCHEMA_VERSION}); upgrade tailorkit")
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"cannot open the database {self.url!r}: {_reason(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> TableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- writing

    def ensure_table(self, name: str, space: str | None = None, meta: dict[str, Any] | None = None) -> None:
        """Create the table's row, or check that an existing table of that name describes the same ops."""
        meta = meta or {}
        with self._begin() as conn:
            row = conn.execute(sa.select(_tables).where(_tables.c.name == name)).first()
            if row is None:
                conn.execute(_tables.insert().values(name=name, space=space, meta_json=json.dumps(meta),
                                                     created_at=time.time()))
                return
        stored = json.loads(row.meta_json or "{}")
        if row.space != space or stored != meta:
            raise TableError(f"table {name!r} in {self.url} holds {row.space} {stored}, not {space} {meta}; "
                             "choose another --name")

    def add(self, record: LatencyRecord) -> None:
        """Append one measurement in its own committed transaction."""
        lat = record.latency
        with self._begin() as conn:
            self._ensure_device(conn, record.device)
            conn.execute(_measurements.insert().values(
                table_name=record.table, key=record.key, device_fingerprint=record.device.fingerprint,
                settings_fingerprint=record.settings.fingerprint,
                settings_json=json.dumps(record.settings.to_dict(), sort_keys=True),
                device_state_json=json.dumps(dict(record.device.state), sort_keys=True),
                op_json=json.dumps(record.op.to_dict()) if record.op is not None else None,
                mean=lat.mean, std=lat.std, n=lat.n, median=lat.median, p90=lat.p90, min=lat.min,
                max=lat.max, n_total=lat.n_total, number=lat.number,
                samples_json=json.dumps(list(lat.samples)) if lat.samples else None,
                created_at=record.timestamp,
            ))

    def import_table(self, table: LatencyTable, device: DeviceInfo, settings: BenchmarkSettings,
                     meta: dict[str, Any] | None = None) -> int:
        """Store a whole table (e.g. a published one) in one transaction: all of it or nothing."""
        now = time.time()
        with self._begin() as conn:
            if conn.execute(sa.select(_tables.c.name).where(_tables.c.name == table.name)).first() is not None:
                raise TableError(f"a table named {table.name!r} already exists in {self.url}; choose another --name")
            conn.execute(_tables.insert().values(name=table.name, space=table.space,
                                                 meta_json=json.dumps(meta or {}), created_at=now))
            self._ensure_device(conn, device)
            conn.execute(_measurements.insert(), [dict(
                table_name=table.name, key=key, device_fingerprint=device.fingerprint,
                settings_fingerprint=settings.fingerprint,
                settings_json=json.dumps(settings.to_dict(), sort_keys=True), device_state_json="{}",
                op_json=None, mean=lat.mean, std=lat.std, n=lat.n, median=lat.median, p90=lat.p90,
                min=lat.min, max=lat.max, n_total=lat.n_total, number=lat.number,
                samples_json=json.dumps(list(lat.samples)) if lat.samples else None, created_at=now,
            ) for key, lat in table.entries.items()])
        return len(table)

    # ---------------------------------------------------------------------------------------- reading

    def measured_keys(self, table: str, device_fingerprint: str, settings_fingerprint: str) -> set[str]:
        with self._connect() as conn:
            rows = conn.execute(sa.select(_measurements.c.key).distinct().where(
                _measurements.c.table_name == table,
                _measurements.c.device_fingerprint == device_fingerprint,
                _measurements.c.settings_fingerprint == settings_fingerprint))
            return {r.key for r in rows}

    def count(self, table: str | None = None) -> int:
        with self._connect() as conn:
            query = sa.select(sa.func.count()).select_from(_measurements)
            if table is not None:
                query = query.where(_measurements.c.table_name == table)
            return int(conn.execute(query).scalar() or 0)

    def variants(self, name: str | None = None) -> list[TableVariant]:
        m = _measurements
        query = (sa.select(m.c.table_name, m.c.device_fingerprint, m.c.settings_fingerprint,
                           sa.func.count(sa.distinct(m.c.key)).label("entries"),
                           sa.func.max(m.c.created_at).label("last"), _devices.c.name.label("device_name"),
                           _tables.c.space, _tables.c.meta_json)
                 .join(_devices, _devices.c.fingerprint == m.c.device_fingerprint)
                 .join(_tables, _tables.c.name == m.c.table_name)
                 .group_by(m.c.table_name, m.c.device_fingerprint, m.c.settings_fingerprint, _devices.c.name,
                           _tables.c.space, _tables.c.meta_json)
                 .order_by(m.c.table_name, sa.desc("last")))
        if name is not None:
            query = query.where(m.c.table_name == name)
        with self._connect() as conn:
            return [TableVariant(name=r.table_name, space=r.space, device_name=r.device_name,
                                 device_fingerprint=r.device_fingerprint,
                                 settings_fingerprint=r.settings_fingerprint, entries=int(r.entries),
                                 last_measured=float(r.last), meta=json.loads(r.meta_json or "{}"))
                    for r in conn.execute(query)]

    def table(self, name: str, device: str | None = None, settings: str | None = None) -> LatencyTable:
        """The latest measurement per key of one variant (device fingerprint × settings fingerprint) of table
        ``name``. ``device`` (a device name or fingerprint prefix) and ``settings`` (a settings fingerprint
        prefix) pick the variant; more than one match is an error listing them, never a silent choice."""
        all_variants = self.variants(name)
        if not all_variants:
            known = sorted({v.name for v in self.variants()})
            raise TableError(f"no table {name!r} in {self.url}; tables: {', '.join(known) or 'none'}")
        variants = [v for v in all_variants
                    if (device is None or device == v.device_name or v.device_fingerprint.startswith(device))
                    and (settings is None or v.settings_fingerprint.startswith(settings))]
        listing = "; ".join(f"device {v.device_name} {v.device_fingerprint[:8]} settings "
                            f"{v.settings_fingerprint[:8]} ({v.entries} entries)" for v in all_variants)
        if not variants:
            raise TableError(f"table {name!r} has no variant for device {device!r} / settings {settings!r}; "
                             f"it has: {listing}")
        if len(variants) > 1:
            raise TableError(f"table {name!r} has {len(variants)} variants; pick one with --device and/or "
                             f"--settings: {listing}")
        chosen = variants[0]
        m = _measurements
        latest = (sa.select(m.c.key, sa.func.max(m.c.id).label("id"))
                  .where(m.c.table_name == name, m.c.device_fingerprint == chosen.device_fingerprint,
                         m.c.settings_fingerprint == chosen.settings_fingerprint)
                  .group_by(m.c.key).subquery())
        with self._connect() as conn:
            rows = conn.execute(sa.select(m).join(latest, latest.c.id == m.c.id).order_by(m.c.key)).all()
            device_row = conn.execute(sa.select(_devices.c.info_json)
                                      .where(_devices.c.fingerprint == chosen.device_fingerprint)).one()
        entries = {r.key: Latency(mean=r.mean, std=r.std, n=r.n, median=r.median, p90=r.p90, min=r.min,
                                  max=r.max, n_total=r.n_total, number=r.number,
                                  samples=tuple(json.loads(r.samples_json)) if r.samples_json else ())
                   for r in rows}
        settings = BenchmarkSettings.from_dict(json.loads(rows[0].settings_json))
        return LatencyTable(name=name, entries=entries, space=chosen.space,
                            device=DeviceInfo.from_dict(json.loads(device_row.info_json)), settings=settings,
                            meta=chosen.meta)

    def records(self, table: str) -> Iterator[dict[str, Any]]:
        """Every raw measurement row of a table, oldest first (audits and benchmarks)."""
        with self._connect() as conn:
            for row in conn.execute(sa.select(_measurements).where(_measurements.c.table_name == table)
                                    .order_by(_measurements.c.id)):
                yield dict(row._mapping)

    # ---------------------------------------------------------------------------------------- plumbing

    def _ensure_device(self, conn: sa.Connection, device: DeviceInfo) -> None:
        exists = conn.execute(sa.select(_devices.c.fingerprint)
                              .where(_devices.c.fingerprint == device.fingerprint)).first()
        if exists is None:
            info = device.to_dict()
            info["state"] = {}
            conn.execute(_devices.insert().values(fingerprint=device.fingerprint, name=device.name,
                                                  kind=device.kind, info_json=json.dumps(info, sort_keys=True)))

    def _begin(self) -> Any:
        return _translate(self.engine.begin(), self.url)

    def _connect(self) -> Any:
        return _translate(self.engine.connect(), self.url)


class _translate:
    """Context manager that turns database errors into StorageError with the URL in the message."""

    def __init__(self, factory: Any, url: str) -> None:
        self._cm = factory
        self._url = url

    def __enter__(self) -> sa.Connection:
        try:
            return self._cm.__enter__()
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"database {self._url!r}: {_reason(exc)}") from None

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            handled = self._cm.__exit__(*exc_info)  # rolls the transaction back when the body failed
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"database {self._url!r}: {_reason(exc)}") from None
        if isinstance(exc_info[1], sa.exc.SQLAlchemyError):
            raise StorageError(f"database {self._url!r}: {_reason(exc_info[1])}") from None
        return handled


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def _open_engine(url: str, create: bool) -> Engine:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StorageError(f"cannot open the database {url!r}: not a database URL ({exc})") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not create and not path.exists():
            raise StorageError(f"no database at {url!r} (build or import a table first)")
        if not path.parent.is_dir():
            raise StorageError(f"cannot open the database {url!r}: directory {str(path.parent)!r} does not exist")
    try:
        engine = sa.create_engine(url, future=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"cannot open the database {url!r}: {exc}") from None
    if is_sqlite:
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the build; a kill loses nothing
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()
    return engine
