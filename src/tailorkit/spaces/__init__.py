"""Search spaces: an arch ↔ its ops (with table keys) ↔ a torch module.

``spaces`` holds the spaces whose ops can be built and measured here (what ``tailor table build`` uses).
``tabular_spaces`` holds the spaces known through public latency tables (NAS-Bench-201, FBNet, HAT): they
own an arch format and an encoding for predictors, but no ops or torch modules, so they are kept out of
``spaces`` where a table build would fail on them.
"""

from __future__ import annotations

from tailorkit.core.registry import Registry
from tailorkit.spaces.fbnet import FBNetArch, FBNetSpace
from tailorkit.spaces.hat import HATArch, HATSpace
from tailorkit.spaces.nb201 import NB201Arch, NB201Space
from tailorkit.spaces.ofa_mbv3 import OFAArch, OFAMobileNetV3Space

TabularSpace = NB201Space | FBNetSpace | HATSpace

spaces: Registry[OFAMobileNetV3Space] = Registry("spaces")
spaces.register("ofa-mbv3")(OFAMobileNetV3Space)

tabular_spaces: Registry[TabularSpace] = Registry("tabular_spaces")
tabular_spaces.register("nb201")(NB201Space)
tabular_spaces.register("fbnet")(FBNetSpace)
tabular_spaces.register("hat")(HATSpace)

__all__ = ["FBNetArch", "FBNetSpace", "HATArch", "HATSpace", "NB201Arch", "NB201Space", "OFAArch",
           "OFAMobileNetV3Space", "TabularSpace", "spaces", "tabular_spaces"]
