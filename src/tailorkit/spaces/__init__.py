"""Search spaces: an arch ↔ its ops (with table keys) ↔ a torch module."""

from __future__ import annotations

from tailorkit.core.registry import Registry
from tailorkit.spaces.ofa_mbv3 import OFAArch, OFAMobileNetV3Space

spaces: Registry[OFAMobileNetV3Space] = Registry("spaces")
spaces.register("ofa-mbv3")(OFAMobileNetV3Space)

__all__ = ["OFAArch", "OFAMobileNetV3Space", "spaces"]
