"""The FBNet space (Wu et al., 2019) as HELP and HW-NAS-Bench tabulate it: 22 searchable layers, each one of
9 candidate blocks.

A block is written ``k{kernel}_e{expand}`` with ``_g2`` for the grouped (2 groups) 1×1 convs, or ``skip``; an
arch stores the block's position in ``BLOCKS``. That order is the one the HELP data's ``op_idx_list`` column
uses (0 = ``k3_e1`` … 8 = ``skip``), so it is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailorkit.core.errors import ConfigError
from tailorkit.spaces.categorical import CategoricalSpace, check_choices

BLOCKS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
N_LAYERS = 22


def _parse(s: str) -> tuple[int, ...]:
    parts = s.split() if isinstance(s, str) else []
    if len(parts) != N_LAYERS or not all(p.isascii() and p.isdigit() and int(p) < len(BLOCKS) for p in parts):
        raise ConfigError(f"not an FBNet arch string: {s!r}; expected {N_LAYERS} block indices in "
                          f"0..{len(BLOCKS) - 1} separated by spaces, e.g. '7 8 1 8 4 ...'")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class FBNetArch:
    """The block (index into ``BLOCKS``) chosen for each of the 22 layers, input to output."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", check_choices(self.ops, N_LAYERS, len(BLOCKS), "an FBNet arch", "block"))

    @property
    def blocks(self) -> tuple[str, ...]:
        """Block names per layer (the HELP data's ``L00..L21`` columns)."""
        return tuple(BLOCKS[i] for i in self.ops)

    def to_str(self) -> str:
        """Space-separated indices, the HELP data's ``op_idx_list`` format (``"7 8 1 ..."``)."""
        return " ".join(str(v) for v in self.ops)

    @classmethod
    def from_str(cls, s: str) -> FBNetArch:
        """Any whitespace between the indices is accepted; ``to_str`` always writes single spaces."""
        return cls(_parse(s))


class FBNetSpace(CategoricalSpace):
    """Encoding: per layer a one-hot over ``BLOCKS``, layers in order, flattened (22×9 = 198). Lossless."""

    name = "fbnet"
    positions = N_LAYERS
    choices = BLOCKS
    position_word = "layer"
    arch_type = FBNetArch
    parse = staticmethod(_parse)
