"""Optional heavy dependencies are imported inside the adapter that needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tailorkit.core.errors import MissingDependencyError


def optional_import(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an error that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module.split('.')[0]!r} ({exc}); "
            f"install it with: pip install 'tailorkit[{extra}]'"
        ) from None
