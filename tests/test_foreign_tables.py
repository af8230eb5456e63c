from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailorkit.core import LatencyTable, OpSpec, TableError
from tailorkit.core.foreign_tables import (
    FBNET_RPI_BLOCKS,
    FBNET_RPI_LAYERS,
    FOREIGN_FORMATS,
    read_fbnet_rpi_json,
    read_proxylessnas_yaml,
)
from tailorkit.spaces.fbnet import BLOCKS, N_LAYERS

from .conftest import SHARED, needs_shared

PROXYLESS = SHARED / "data" / "ofa_proxyless_luts" / "proxylessnas_mobile_trim.yaml"
FBNET_RPI = SHARED / "data" / "misc_luts" / "fbnet_cifar10_rpi4_lookup_table_jh88.json"
NO_SKIP_LAYERS = (1, 5, 9, 13, 17, 21)  # jh88 offers no skip where a layer changes shape


def test_foreign_formats_name_both_readers() -> None:
    assert FOREIGN_FORMATS == {"proxylessnas": read_proxylessnas_yaml, "fbnet-rpi": read_fbnet_rpi_json}


# ------------------------------------------------------------------------------ ProxylessNAS, real file


@needs_shared(PROXYLESS)
def test_proxylessnas_entries_match_the_raw_file() -> None:
    raw = yaml.safe_load(PROXYLESS.read_text())
    table = read_proxylessnas_yaml(PROXYLESS)
    assert len(raw) == len(table) == 72
    assert (table.name, table.space) == ("proxylessnas_mobile_trim", "proxylessnas-mobile")
    assert table.meta["unit"] == table.meta["source_unit"] == "ms"
    source_keys = table.meta["source_keys"]
    assert set(source_keys) == set(raw) and set(source_keys.values()) == set(table.entries)
    for raw_key, value in raw.items():
        lat = table[source_keys[raw_key]]
        assert lat.mean == value["mean"] and lat.n == value["count"]
        assert lat.std == pytest.approx(math.sqrt(value["var"]), rel=1e-12)


@needs_shared(PROXYLESS)
def test_proxylessnas_keys_are_canonical_and_faithful() -> None:
    table = read_proxylessnas_yaml(PROXYLESS, "pixel1")
    assert table.name == "pixel1"
    for key in table:
        assert OpSpec.from_key(key).key == key
    keys = table.meta["source_keys"]
    assert keys["Conv-input:224x224x3-output:112x112x32"] == \
        "conv-input:224x224x3-output:112x112x32-kernel:3-stride:2-act:relu"
    assert keys["Conv_1-input:7x7x320-output:7x7x1280"] == "conv-input:7x7x320-output:7x7x1280-act:relu"
    assert keys["Logits-input:7x7x1280-output:1000"] == "Logits-input:7x7x1280-output:1000"
    assert keys["expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0"] == \
        "expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0"
    # ratio 1 on the first block: the middle width is the input width
    assert keys["expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:7-stride:1-idskip:0"] == \
        "expanded_conv-input:112x112x32-output:112x112x16-expand:32-kernel:7-stride:1-idskip:0-se:0-hs:0"
    for raw_key, key in keys.items():
        spec = OpSpec.from_key(key)
        assert spec.activation != "hswish" and not spec.se
        if spec.op_type == "expanded_conv":
            ratio = int(raw_key.split("-expand:")[1].split("-")[0])
            assert spec.expand == spec.input_shape[2] * ratio
            assert spec.idskip == raw_key.endswith("idskip:1")


@needs_shared(PROXYLESS)
def test_proxylessnas_table_survives_a_json_round_trip(tmp_path: Path) -> None:
    table = read_proxylessnas_yaml(PROXYLESS)
    back = LatencyTable.read(table.write(tmp_path / "p.json"))
    assert back.space == "proxylessnas-mobile" and back.meta == table.meta
    assert {k: v.mean for k, v in back.entries.items()} == {k: v.mean for k, v in table.entries.items()}


# ------------------------------------------------------------------------------ ProxylessNAS, bad input

GOOD_BLOCK = "expanded_conv-input:56x56x24-output:28x28x40-expand:6-kernel:5-stride:2-idskip:0"


def _write_yaml(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "lut.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_proxylessnas_small_table_reads(tmp_path: Path) -> None:
    table = read_proxylessnas_yaml(_write_yaml(tmp_path, {GOOD_BLOCK: {"count": 4, "mean": 2.0, "var": 0.25},
                                                          "Conv-input:96x96x3-output:48x48x16": {"mean": 1.5},
                                                          "Conv-input:32x32x3-output:32x32x16": {"mean": 0.5}}))
    block = table["expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:0-hs:0"]
    assert (block.mean, block.std, block.n) == (2.0, 0.5, 4)
    conv = table["conv-input:96x96x3-output:48x48x16-kernel:3-stride:2-act:relu"]
    assert (conv.mean, conv.std, conv.n) == (1.5, 0.0, 1)  # no var / count: like LatencyTable.read
    assert table["conv-input:32x32x3-output:32x32x16-kernel:3-act:relu"].mean == 0.5  # stride 1 from the shapes


@pytest.mark.parametrize(("content", "match"), [
    ("Conv: [1, 2\n", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping of op keys"),
    ("", "expected a mapping of op keys"),
    ({GOOD_BLOCK: {"count": 3, "var": 0.1}}, "has no mean"),
    ({GOOD_BLOCK: {"count": 3, "mean": -1.0, "var": 0.1}}, "mean must be a finite number >= 0"),
    ({GOOD_BLOCK: {"count": 3, "mean": float("nan"), "var": 0.1}}, "mean must be a finite number >= 0"),
    ({GOOD_BLOCK: {"count": 3, "mean": "fast", "var": 0.1}}, "mean must be a finite number >= 0"),
    ({GOOD_BLOCK: {"count": 3, "mean": 1.0, "var": -0.1}}, "var must be a finite number >= 0"),
    ({GOOD_BLOCK: {"count": 3, "mean": 1.0, "var": float("nan")}}, "var must be a finite number >= 0"),
    ({GOOD_BLOCK: {"count": 3, "mean": 1.0, "var": float("inf")}}, "var must be a finite number >= 0"),
    ({GOOD_BLOCK: {"count": 0, "mean": 1.0, "var": 0.1}}, "count must be a whole number >= 1"),
    ({GOOD_BLOCK: {"count": 2.5, "mean": 1.0, "var": 0.1}}, "count must be a whole number >= 1"),
    ({GOOD_BLOCK: {"count": 3, "mean": 1.0, "std": 0.1}}, r"unknown fields \['std'\]"),
    ({GOOD_BLOCK: 1.0}, "must be a mapping with count, mean, var"),
    ({1: {"mean": 1.0}}, "op key 1 is not a string"),
    ({"Pool-input:7x7x8-output:1x1x8": {"mean": 1.0}}, "unknown op type 'Pool'"),
    ({GOOD_BLOCK + "-se:0-hs:0": {"mean": 1.0}}, "OFA MobileNetV3 key"),
    ({GOOD_BLOCK.replace("-stride:2", ""): {"mean": 1.0}}, r"missing \['stride'\]"),
    ({GOOD_BLOCK + "-dilation:1": {"mean": 1.0}}, r"unknown \['dilation'\]"),
    ({GOOD_BLOCK.replace("expand:6", "expand:0"): {"mean": 1.0}}, "expand:0 must be a whole number >= 1"),
    ({GOOD_BLOCK.replace("kernel:5", "kernel:five"): {"mean": 1.0}}, "kernel:five must be a whole number"),
    ({GOOD_BLOCK.replace("idskip:0", "idskip:2"): {"mean": 1.0}}, "idskip:2 must be 0 or 1"),
    ({GOOD_BLOCK.replace("stride:2", "stride:1"): {"mean": 1.0}}, "is not input .* at stride 1"),
    ({GOOD_BLOCK.replace("idskip:0", "idskip:1"): {"mean": 1.0}}, "identity shortcut"),
    ({GOOD_BLOCK.replace("56x56x24", "56xx24"): {"mean": 1.0}}, "is not a shape"),
    ({GOOD_BLOCK.replace("28x28x40", "28x40"): {"mean": 1.0}}, "output must have 3 dimensions"),
    ({"expanded_conv-output:8x8x8-expand:1-kernel:3-stride:1-idskip:1": {"mean": 1.0}}, "has no input:"),
    ({"Conv-input:224x224x3": {"mean": 1.0}}, "has no output:"),
    ({"Conv-input:224x224x3-output:112x112x32-kernel:3": {"mean": 1.0}}, "only input and output"),
    ({"Conv-input:224x224x3-output:100x112x32": {"mean": 1.0}}, "at any stride"),
    ({"Conv_1-input:7x7x320-output:4x4x1280": {"mean": 1.0}}, "spatial size changes"),
    ({"Logits-input:7x7x1280-output:1x1x1000": {"mean": 1.0}}, "output must have 1 dimensions"),
    ({"Conv-input:224x224x3-output": {"mean": 1.0}}, "is not name:value"),
    ({"Conv-input:224x224x3-input:224x224x3-output:112x112x32": {"mean": 1.0}}, "appears twice"),
    # the same op under two spellings would silently lose one measurement
    ({GOOD_BLOCK: {"mean": 1.0},
      "expanded_conv-input:56x56x24-output:28x28x40-kernel:5-expand:6-stride:2-idskip:0": {"mean": 2.0}},
     "both name the op"),
])
def test_proxylessnas_bad_input_raises_table_error(tmp_path: Path, content: Any, match: str) -> None:
    with pytest.raises(TableError, match=match):
        read_proxylessnas_yaml(_write_yaml(tmp_path, content))


def test_proxylessnas_missing_file_raises_table_error(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="does not exist"):
        read_proxylessnas_yaml(tmp_path / "nope.yaml")
    with pytest.raises(TableError, match="cannot read"):
        read_proxylessnas_yaml(tmp_path)  # a directory


def test_proxylessnas_non_utf8_file_raises_table_error(tmp_path: Path) -> None:
    path = tmp_path / "lut.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TableError, match="cannot read"):
        read_proxylessnas_yaml(path)


# ------------------------------------------------------------------------------------ FBNet, real file


@needs_shared(FBNET_RPI)
def test_fbnet_rpi_layers_and_values_match_the_raw_file() -> None:
    raw = json.loads(FBNET_RPI.read_text())
    table = read_fbnet_rpi_json(FBNET_RPI)
    assert (table.name, table.space) == ("fbnet_cifar10_rpi4_lookup_table_jh88", "fbnet-cifar10-jh88")
    assert (table.meta["unit"], table.meta["source_unit"]) == ("ms", "us")
    layers, layer_ms, positions = table.meta["layers"], table.meta["layer_ms"], table.meta["source_positions"]
    assert len(layers) == len(layer_ms) == len(positions) == N_LAYERS
    assert [i for i, v in enumerate(raw) if v is None] == [0, 1, 24, 25, 26, 27]
    assert positions == list(range(2, 24))
    assert [i for i, keys in enumerate(layers) if len(keys) == 8] == list(NO_SKIP_LAYERS)
    assert sum(len(keys) for keys in layers) == 16 * 9 + 6 * 8 == 192
    for index, (keys, ms) in enumerate(zip(layers, layer_ms, strict=True)):
        assert len(keys) == len(ms) == len(raw[positions[index]])
        for key, value, source in zip(keys, ms, raw[positions[index]], strict=True):
            assert value == source / 1000.0  # µs → ms
            assert index in table.meta["merged"].get(key, [index])
            assert key in table.entries
    # one key per distinct op: the three stride-1 repeats of the five 4-layer stages share theirs
    assert len(table) == 9 + 5 * (8 + 9) + 8 == 102
    assert set(table.meta["merged"]) == {k for keys in layers for k in keys if sum(k in ks for ks in layers) > 1}
    assert all(len(v) == 3 for v in table.meta["merged"].values()) and len(table.meta["merged"]) == 5 * 9


@needs_shared(FBNET_RPI)
def test_fbnet_rpi_entries_are_canonical_with_known_keys_and_means() -> None:
    raw = json.loads(FBNET_RPI.read_text())
    table = read_fbnet_rpi_json(FBNET_RPI, "rpi4")
    assert table.name == "rpi4"
    for key in table:
        assert OpSpec.from_key(key).key == key
    layers = table.meta["layers"]
    assert layers[0][8] == "fbnet_skip-input:32x32x16-output:32x32x16"
    assert layers[1][1] == "fbnet_block-input:32x32x16-output:16x16x24-kernel:3-stride:2-expand:16-groups:2-act:relu"
    assert layers[21][7] == "fbnet_block-input:8x8x184-output:8x8x352-kernel:5-expand:1104-act:relu"
    assert layers[2][3] == "fbnet_block-input:16x16x24-output:16x16x24-kernel:3-expand:144-idskip:1-act:relu"
    assert layers[2] == layers[3] == layers[4]
    single = table[layers[0][0]]  # a layer of its own: one sample, the mean of 10 calls
    assert (single.mean, single.std, single.n, single.number) == (raw[2][0] / 1000.0, 0.0, 1, 10)
    shared = table[layers[2][3]]
    values = [raw[p][3] / 1000.0 for p in (4, 5, 6)]
    assert shared.n == 3 and shared.mean == pytest.approx(sum(values) / 3, rel=1e-12)
    assert shared.std == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert table.meta["merged"][layers[2][3]] == [2, 3, 4]


@needs_shared(FBNET_RPI)
def test_fbnet_rpi_candidate_order_is_tailorkits() -> None:
    table = read_fbnet_rpi_json(FBNET_RPI)
    assert tuple(table.meta["blocks"]) == FBNET_RPI_BLOCKS == BLOCKS
    for keys in table.meta["layers"]:
        for block, key in zip(BLOCKS, keys, strict=False):
            spec = OpSpec.from_key(key)
            if block == "skip":
                assert spec.op_type == "fbnet_skip" and spec.input_shape == spec.output_shape
                continue
            kernel, expand = block.split("_")[:2]
            assert spec.kernel == int(kernel[1:])
            assert spec.expand == spec.input_shape[2] * int(expand[1:])
            assert spec.groups == (2 if block.endswith("_g2") else 1)


@needs_shared(FBNET_RPI)
def test_fbnet_rpi_arch_sum_matches_jh88s_numbers() -> None:
    raw = json.loads(FBNET_RPI.read_text())
    table = read_fbnet_rpi_json(FBNET_RPI)
    arch = [8 if len(keys) == 9 else 3 for keys in table.meta["layers"]]  # skip wherever allowed, else k3_e6
    exact = sum(raw[2 + i][b] for i, b in enumerate(arch)) / 1000.0
    per_layer = sum(table.meta["layer_ms"][i][b] for i, b in enumerate(arch))
    by_key = sum(table[table.meta["layers"][i][b]].mean for i, b in enumerate(arch))
    assert per_layer == pytest.approx(exact, rel=1e-12)
    assert by_key == pytest.approx(exact, rel=0.01)  # repeats share one averaged entry


@needs_shared(FBNET_RPI)
def test_fbnet_rpi_table_survives_a_json_round_trip(tmp_path: Path) -> None:
    table = read_fbnet_rpi_json(FBNET_RPI)
    back = LatencyTable.read(table.write(tmp_path / "f.json"))
    assert back.meta == table.meta and back.space == table.space
    assert {k: (v.mean, v.n, v.number) for k, v in back.entries.items()} == \
        {k: (v.mean, v.n, v.number) for k, v in table.entries.items()}


# ------------------------------------------------------------------------------------ FBNet, bad input


def _fbnet_list(value: float = 1500.0) -> list[Any]:
    body = [[value] * (9 if layer.has_skip else 8) for layer in FBNET_RPI_LAYERS]
    return [None, None, *body, None, None, None, None]


def _write_json(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "lut.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_fbnet_rpi_small_table_reads(tmp_path: Path) -> None:
    table = read_fbnet_rpi_json(_write_json(tmp_path, _fbnet_list()))
    assert len(table) == 102 and all(lat.mean == 1.5 and lat.std == 0.0 for lat in table.entries.values())


def _replace(position: int, value: Any) -> list[Any]:
    data = _fbnet_list()
    data[position] = value
    return data


def _set_number(position: int, index: int, value: Any) -> list[Any]:
    data = _fbnet_list()
    data[position][index] = value
    return data


@pytest.mark.parametrize(("content", "match"), [
    ("[null, null, [1, 2", "not valid JSON"),
    ({"layers": []}, "expected a list of 28 entries .* got dict"),
    (_fbnet_list()[:-1], "expected a list of 28 entries .* got a list of 27"),
    (_replace(0, [1.0] * 9), "entry 0 is a fixed layer and must be null"),
    (_replace(26, 3.0), "entry 26 is a fixed layer"),
    (_replace(2, None), r"searchable layer 0 \(entry 2\) needs 9 numbers .* got None"),
    (_replace(3, [1.0] * 9), r"searchable layer 1 \(entry 3\) needs 8 numbers .*no skip.* got 9 numbers"),
    (_replace(4, [1.0] * 8), r"searchable layer 2 \(entry 4\) needs 9 numbers .*skip last.* got 8 numbers"),
    (_set_number(5, 2, -4.0), "candidate 2 must be a finite number >= 0, got -4.0"),
    (_set_number(5, 0, "fast"), "candidate 0 must be a finite number >= 0"),
    (_set_number(5, 0, True), "candidate 0 must be a finite number >= 0"),
    (json.dumps(_fbnet_list()).replace("1500.0", "NaN", 1), "candidate 0 must be a finite number >= 0, got nan"),
])
def test_fbnet_rpi_bad_input_raises_table_error(tmp_path: Path, content: Any, match: str) -> None:
    with pytest.raises(TableError, match=match):
        read_fbnet_rpi_json(_write_json(tmp_path, content))


def test_fbnet_rpi_missing_file_raises_table_error(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="does not exist"):
        read_fbnet_rpi_json(tmp_path / "nope.json")
