"""Records, errors, the registry, lazy optional imports and configuration: everything else builds on these."""

from tailorkit.core.errors import (
    ConfigError,
    DeviceError,
    MissingDependencyError,
    ModelFormatError,
    PredictorError,
    StorageError,
    TableError,
    TailorError,
    UnknownNameError,
)
from tailorkit.core.records import (
    BenchmarkSettings,
    DeviceInfo,
    ExportArtifact,
    Latency,
    LatencyRecord,
    OpLatency,
    OpSpec,
)
from tailorkit.core.registry import Registry
from tailorkit.core.table import LatencyTable

__all__ = [
    "BenchmarkSettings", "ConfigError", "DeviceError", "DeviceInfo", "ExportArtifact", "Latency", "LatencyRecord",
    "LatencyTable", "MissingDependencyError", "ModelFormatError", "OpLatency", "OpSpec", "PredictorError",
    "Registry", "StorageError", "TableError", "TailorError", "UnknownNameError",
]
