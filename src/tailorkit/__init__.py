"""tailorkit: measure how networks run on real devices, tabulate, predict, search and export.

The facade is small and imports nothing heavy until used::

    import tailorkit
    result = tailorkit.profile("ofa-mbv3-max", device="cpu", per_op=True)
    report = tailorkit.build_table("ofa-mbv3", device="cpu", resolution=160)
"""

from __future__ import annotations

from typing import Any

from tailorkit.core.version import __version__


def profile(model: Any, device: str = "cpu", **kwargs: Any) -> Any:
    """Measure a model end to end (and per op with ``per_op=True``); see :func:`tailorkit.profiler.profile`."""
    from tailorkit.profiler import api

    return api.profile(model, device=device, **kwargs)


def build_table(space: str, device: str = "cpu", **kwargs: Any) -> Any:
    """Measure every op of a space at one resolution into the store; see :func:`tailorkit.profiler.build_table`."""
    from tailorkit.profiler import api

    return api.build_table(space, device=device, **kwargs)


__all__ = ["__version__", "build_table", "profile"]
