"""One error hierarchy: the CLI prints ``error: <message>`` for any TailorError and exits non-zero."""

from __future__ import annotations


class TailorError(Exception):
    """Base of every error a user can cause or fix; never shown with a traceback."""


class ConfigError(TailorError):
    """``tailor.toml`` or a command-line setting is invalid."""


class UnknownNameError(TailorError):
    """A registry was asked for a name it does not have."""


class MissingDependencyError(TailorError):
    """A known component needs an optional package that is not installed."""


class DeviceError(TailorError):
    """A device could not be reached or failed while measuring."""


class ModelFormatError(TailorError):
    """A model file is missing, unreadable, or not in the expected format."""


class TableError(TailorError):
    """A latency table or one of its keys is malformed or missing."""


class StorageError(TailorError):
    """The measurement store could not be opened or written."""


class PredictorError(TailorError):
    """A predictor cannot be trained, loaded or applied as asked (wrong data, file or space)."""


class CheckpointError(TailorError):
    """A checkpoint (supernet training, search) that cannot be used: missing, corrupt, made with other settings."""
