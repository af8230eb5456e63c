"""Measurement: end-to-end and per-op profiles, single-op models, lookup-table building, the table store.

The names are loaded on first use: ``tailorkit.profiler.store`` (the CLI's table commands) must not pay for
torch, which profiling and table building import."""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {"ModelProfile": "api", "build_table": "api", "open_device": "api", "profile": "api", "table_name": "api",
         "TableStore": "store", "TableVariant": "store",
         "TableBuildReport": "tables", "TableProgress": "tables", "export_op": "tables"}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
