from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from tailorkit.core import ConfigError, OpSpec
from tailorkit.spaces import OFAArch, OFAMobileNetV3Space, spaces
from tailorkit.spaces.base import make_divisible
from tailorkit.spaces.blocks import build_op, example_input

from .conftest import NOTE10, needs_shared


@needs_shared(NOTE10)
@pytest.mark.parametrize("resolution", [160, 176, 192, 208, 224])
def test_width_12_inventory_equals_ofa_note10_keys(resolution: int) -> None:
    ours = [op.key for op in OFAMobileNetV3Space(width=1.2).all_ops(resolution)]
    theirs = yaml.safe_load((NOTE10 / f"{resolution}_lookup_table.yaml").read_text())
    assert len(ours) == len(set(ours)) == 96
    assert set(ours) == set(theirs)


def test_subnet_ops_are_in_the_inventory_and_parse_back() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        arch = space.sample(rng)
        inventory = {op.key for op in space.all_ops(arch.r)}
        ops = space.ops(arch)
        assert len(ops) == 2 + sum(arch.d) + 4
        for op in ops:
            assert op.key in inventory
            assert OpSpec.from_key(op.key) == op


def test_largest_and_smallest_are_the_extremes() -> None:
    space = OFAMobileNetV3Space()
    big, small = space.ops(space.largest(224)), space.ops(space.smallest(224))
    assert len(big) == 26 and len(small) == 16
    assert all(op.kernel == 7 for op in big if op.op_type == "expanded_conv" and op.expand != op.input_shape[-1])


def test_build_runs_and_is_made_of_the_ops() -> None:
    space = OFAMobileNetV3Space(width=1.0, num_classes=10)
    arch = space.sample(np.random.default_rng(0), resolution=128)
    model = space.build(arch)
    assert len(model) == len(space.ops(arch))
    with torch.no_grad():
        y = model(torch.randn(2, 3, 128, 128))
    assert y.shape == (2, 10)


@pytest.mark.parametrize("key", [
    "Conv-input:128x128x3-output:64x64x16",
    "expanded_conv-input:16x16x40-output:8x8x80-expand:240-kernel:5-stride:2-idskip:0-se:0-hs:1",
    "expanded_conv-input:8x8x112-output:8x8x112-expand:448-kernel:3-stride:1-idskip:1-se:1-hs:1",
    "AvgPool2D-input:4x4x960-output:1x1x960", "Logits-input:1x1x1280-output:1000"])
def test_single_op_modules_produce_the_keyed_output_shape(key: str) -> None:
    spec = OpSpec.from_key(key)
    with torch.no_grad():
        y = build_op(spec)(example_input(spec))
    expected = spec.output_shape if len(spec.output_shape) == 1 else (spec.output_shape[2],) + spec.output_shape[:2]
    assert tuple(y.shape[1:]) == tuple(expected)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="stride"):
        build_op(OpSpec("expanded_conv", (16, 16, 8), (16, 16, 8), kernel=3, stride=2, expand=24,
                        activation="relu"))


def test_make_divisible_matches_ofa_widths() -> None:
    assert [make_divisible(c * 1.2) for c in (16, 24, 40, 80, 112, 160, 960, 1280)] == [24, 32, 48, 96, 136, 192,
                                                                                       1152, 1536]


def test_arch_validation_and_json() -> None:
    space = spaces.create("ofa-mbv3", width=1.2)
    arch = space.largest(160)
    assert OFAArch.from_dict(arch.to_dict()) == arch
    with pytest.raises(ConfigError):
        OFAArch(ks=(4,) * 20, e=(3,) * 20, d=(2,) * 5, r=160)
    with pytest.raises(ConfigError):
        space.all_ops(150)
    with pytest.raises(ConfigError):
        OFAMobileNetV3Space(width=0.75)
