"""Search spaces: an arch ↔ its encoding ↔ its ops (with table keys) ↔ a torch module, behind one
:class:`Space` seam and one registry. ``buildable`` spaces (OFA-MobileNetV3) have ops to measure and modules to
build; NAS-Bench-201, FBNet and HAT are known through public latency tables and say so when asked for ops.
"""

from __future__ import annotations

from tailorkit.core.registry import Registry
from tailorkit.spaces.base import Space
from tailorkit.spaces.fbnet import FBNetArch, FBNetSpace
from tailorkit.spaces.hat import HATArch, HATSpace
from tailorkit.spaces.mnasnet import MnasNetArch, MnasNetSpace
from tailorkit.spaces.nb201 import NB201Arch, NB201Space
from tailorkit.spaces.ofa_mbv3 import OFAArch, OFAMobileNetV3Space
from tailorkit.spaces.spos import SPOSArch, SPOSReducedSpace, SPOSSpace

spaces: Registry[Space] = Registry("spaces")
spaces.register("ofa-mbv3")(OFAMobileNetV3Space)
spaces.register("nb201")(NB201Space)
spaces.register("fbnet")(FBNetSpace)
spaces.register("hat")(HATSpace)
spaces.register("spos")(SPOSSpace)
spaces.register("spos-reduced")(SPOSReducedSpace)
spaces.register("mnasnet")(MnasNetSpace)


def create_space(name: str, width: float = 1.0) -> Space:
    """A space by name; ``width`` applies to the spaces built here (the others have one fixed form)."""
    factory = spaces.get(name)
    return factory(width=width) if getattr(factory, "buildable", False) else factory()


__all__ = ["FBNetArch", "FBNetSpace", "HATArch", "HATSpace", "MnasNetArch", "MnasNetSpace", "NB201Arch", "NB201Space",
           "OFAArch", "OFAMobileNetV3Space", "SPOSArch", "SPOSReducedSpace", "SPOSSpace", "Space", "create_space",
           "spaces"]
