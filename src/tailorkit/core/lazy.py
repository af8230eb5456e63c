"""Optional heavy dependencies are imported inside the adapter that needs them."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
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


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch limited to ``n`` threads inside the block (torch imported only here). Its OpenMP workers spin after
    parallel work: with one thread there are none to steal cores from a measurement that follows, or from a
    small model's training that gains nothing from a second one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
