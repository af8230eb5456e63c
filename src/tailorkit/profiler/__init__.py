"""Measurement: end-to-end and per-op profiles, single-op models, lookup-table building, the table store."""

from tailorkit.profiler.api import ModelProfile, build_table, open_device, profile, table_name
from tailorkit.profiler.store import TableStore, TableVariant
from tailorkit.profiler.tables import TableBuildReport, TableProgress, export_op

__all__ = ["ModelProfile", "TableBuildReport", "TableProgress", "TableStore", "TableVariant", "build_table",
           "export_op", "open_device", "profile", "table_name"]
