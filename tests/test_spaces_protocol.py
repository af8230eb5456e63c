"""The Space seam, for every registered space alike: sampling, mutation, crossover, encodings, JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailorkit.core import ConfigError
from tailorkit.spaces import MnasNetSpace, OFAMobileNetV3Space, Space, SPOSSpace, spaces

NAMES = spaces.names()
LOSSLESS = ["fbnet", "mnasnet", "nb201", "ofa-mbv3", "spos", "spos-reduced"]


def _space(name: str) -> Space:
    return spaces.create(name)


def test_every_space_is_registered_with_the_full_protocol() -> None:
    assert NAMES == ["fbnet", "hat", "mnasnet", "nb201", "ofa-mbv3", "spos", "spos-reduced"]
    for name in NAMES:
        space = _space(name)
        assert isinstance(space, Space) and space.name == name
        info = space.describe()
        assert info["archs"] > 1 and info["encoding_length"] == space.encoding_length
    assert _space("nb201").size == 5**6
    # per stage: 9² + 9³ + 9⁴ kernel/expand combinations over its depth choices; 25 resolutions
    assert _space("ofa-mbv3").size == (9**2 + 9**3 + 9**4) ** 5 * 25
    assert _space("spos-reduced").size == (4 * 10) ** 5 and _space("spos").size == (4 * 10) ** 20


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_json_encoding_mutation_and_crossover(name: str, seed: int) -> None:
    space = _space(name)
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    assert space.arch_from_json(space.arch_to_json(a)) == a
    X = space.encode_batch([a, b])
    assert X.shape == (2, space.encoding_length)
    np.testing.assert_array_equal(space.encode(a), X[0])
    if name in LOSSLESS:
        assert space.decode(X[0]) == a
    child = space.mutate(a, rng, prob=0.05)
    assert child != a  # at least one live choice changes
    assert space.arch_from_json(space.arch_to_json(child)) == child
    mixed = space.crossover(a, b, rng)
    genes = space.arch_to_dict(mixed)
    for key, value in genes.items():
        if isinstance(value, list) and name != "hat":
            for i, v in enumerate(value):
                assert v in (space.arch_to_dict(a)[key][i], space.arch_to_dict(b)[key][i])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ofa_mutation_changes_the_network_not_only_unused_slots(seed: int) -> None:
    space = OFAMobileNetV3Space()
    rng = np.random.default_rng(seed)
    arch = space.sample(rng)
    child = space.mutate(arch, rng, prob=0.0)  # exactly one forced change, always a live one
    assert [op.key for op in space.ops(child)] != [op.key for op in space.ops(arch)] or child.r != arch.r


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ofa_ops_are_in_the_table_inventory(seed: int) -> None:
    space = OFAMobileNetV3Space(width=1.2)
    arch = space.sample(np.random.default_rng(seed))
    inventory = {op.key for op in space.all_ops(arch.r)}
    assert {op.key for op in space.ops(arch)} <= inventory


def test_ofa_ops_match_the_exported_onnx_graph(tmp_path: Path) -> None:
    """Every conv the op list implies is a Conv node of the built network's ONNX graph, and nothing else is."""
    import onnx

    from tailorkit.export.onnx import OnnxExporter

    space = OFAMobileNetV3Space()
    rng = np.random.default_rng(5)
    for i in range(3):
        arch = space.sample(rng, resolution=128)
        ops = space.ops(arch)
        expected = 0
        for op in ops:
            if op.op_type == "expanded_conv":
                expected += (op.expand != op.input_shape[-1]) + 2 + 2 * op.se
            elif op.op_type in ("Conv", "Conv_1", "Conv_2"):
                expected += 1
        import torch

        path = OnnxExporter().export(space.build(arch), torch.randn(*space.input_shape(arch)),
                                     tmp_path / f"a{i}.onnx").path
        nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert nodes.count("Conv") == expected
        assert nodes.count("Gemm") + nodes.count("MatMul") == sum(op.op_type == "Logits" for op in ops) == 1


def test_bad_arch_json_names_the_field() -> None:
    ofa = _space("ofa-mbv3")
    good = ofa.arch_to_dict(ofa.sample(np.random.default_rng(0)))
    with pytest.raises(ConfigError, match="missing \\['r'\\]"):
        ofa.arch_from_dict({k: v for k, v in good.items() if k != "r"})
    with pytest.raises(ConfigError, match="unknown \\['w'\\]"):
        ofa.arch_from_dict({**good, "w": 1})
    with pytest.raises(ConfigError, match="ks must be 20 values"):
        ofa.arch_from_dict({**good, "ks": good["ks"][:19]})
    with pytest.raises(ConfigError, match="ks must be 20 values"):
        ofa.arch_from_dict({**good, "ks": [4] * 20})
    with pytest.raises(ConfigError, match="resolution must be one of 128..224"):
        ofa.arch_from_dict({**good, "r": 230})
    for bad in (["a"] * 20, [None] * 20, [[3]] * 20, [3.9] * 20, [True] * 20):  # never truncated or coerced
        with pytest.raises(ConfigError, match="ks must be 20 values"):
            ofa.arch_from_dict({**good, "ks": bad})
    with pytest.raises(ConfigError, match="6 op indices"):
        _space("nb201").arch_from_dict({"ops": [1, 2, 3, 1.5, 0, 0]})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        ofa.arch_from_json("[1, 2]")
    with pytest.raises(ConfigError, match="decoder_layer_num"):
        hat = _space("hat")
        hat.arch_from_dict({**hat.arch_to_dict(hat.sample(np.random.default_rng(0))), "decoder_layer_num": 7})
    with pytest.raises(ConfigError, match="fields"):
        _space("nb201").arch_from_dict({"arch": "x", "ops": [1]})
    with pytest.raises(ConfigError, match="lossy"):
        _space("hat").decode(np.zeros(10))
    with pytest.raises(ConfigError, match="no ops to build"):
        _space("nb201").ops(_space("nb201").sample(np.random.default_rng(0)))
    with pytest.raises(ConfigError, match="mutation probability"):
        ofa.mutate(ofa.sample(np.random.default_rng(0)), np.random.default_rng(0), prob=1.5)


def test_spos_ops_match_the_exported_onnx_graph(tmp_path: Path) -> None:
    import onnx
    import torch

    from tailorkit.export.onnx import OnnxExporter

    space = SPOSSpace(resolution=64)
    rng = np.random.default_rng(2)
    for i in range(2):
        arch = space.sample(rng)
        ops = space.ops(arch)
        assert {op.key for op in ops} <= {op.key for op in space.all_ops()}
        expected = 0
        for op in ops:
            main = 3 if op.op_type == "shufflenet" else 6 if op.op_type == "shuffle_xception" else 0
            expected += main + (2 if op.stride == 2 and main else 0) + (op.op_type == "conv")
        path = OnnxExporter().export(space.build(arch), torch.randn(*space.input_shape(arch)),
                                     tmp_path / f"s{i}.onnx").path
        nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert nodes.count("Conv") == expected
    assert space.build(arch)(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_spos_mixed_precision_space() -> None:
    space = SPOSSpace(bits=(4, 8))
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    assert set(arch.bits) <= {4, 8} and len(arch.bits) == 20
    assert {op.dtype for op in space.ops(arch)[1:-3]} <= {"int4", "int8"}
    assert space.encoding_length == 20 * (4 + 10 + 2) and space.decode(space.encode(arch)) == arch
    assert len(space.all_ops()) == 2 * len(SPOSSpace().all_ops()) - 4  # blocks twice, stem and tail once
    with pytest.raises(ConfigError, match="do not fit this space"):
        SPOSSpace().ops(arch)
    with pytest.raises(ConfigError, match="missing \\['bits'\\]"):
        space.arch_from_dict({"blocks": [0] * 20, "channels": [0] * 20})
    with pytest.raises(ConfigError, match="channels must be 20 indices in 0..9"):
        SPOSSpace().arch_from_dict({"blocks": [0] * 20, "channels": [10] * 20})


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_mnasnet_ops_are_in_the_inventory(seed: int) -> None:
    space = MnasNetSpace()
    arch = space.sample(np.random.default_rng(seed))
    assert {op.key for op in space.ops(arch)} <= {op.key for op in _MNAS_INVENTORY}


_MNAS_INVENTORY = MnasNetSpace().all_ops()


def test_mnasnet_ops_match_the_exported_onnx_graph(tmp_path: Path) -> None:
    import onnx
    import torch

    from tailorkit.export.onnx import OnnxExporter

    space = MnasNetSpace(resolution=64)
    rng = np.random.default_rng(4)
    for i, arch in enumerate([space.baseline(), space.sample(rng), space.sample(rng)]):
        ops = space.ops(arch)
        expected = sum(1 if op.op_type == "conv" else 2 if op.op_type == "sepconv"
                       else (op.expand != op.input_shape[-1]) + 2 + 2 * op.se if op.op_type == "expanded_conv"
                       else 0 for op in ops)
        path = OnnxExporter().export(space.build(arch), torch.randn(*space.input_shape(arch)),
                                     tmp_path / f"m{i}.onnx").path
        nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert nodes.count("Conv") == expected
        assert nodes.count("Add") == sum(op.idskip for op in ops)
    base = space.ops(space.baseline())
    assert len(base) == 1 + sum((1, 2, 3, 4, 3, 3, 1)) + 3  # the MobileNetV2 skeleton's 17 layers
