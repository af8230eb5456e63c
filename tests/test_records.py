from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailorkit.core import BenchmarkSettings, ConfigError, DeviceInfo, Latency, OpSpec, TableError

OFA_KEY = "expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:5-stride:2-idskip:0-se:0-hs:0"


def test_ofa_key_parses_and_reproduces_exactly() -> None:
    spec = OpSpec.from_key(OFA_KEY)
    assert spec.op_type == "expanded_conv"
    assert spec.input_shape == (112, 112, 24) and spec.output_shape == (56, 56, 32)
    assert (spec.expand, spec.kernel, spec.stride, spec.idskip, spec.se, spec.activation) == (144, 5, 2, False,
                                                                                              False, "relu")
    assert spec.key == OFA_KEY


@pytest.mark.parametrize("key", [
    "Conv-input:160x160x3-output:80x80x24", "Conv_1-input:5x5x192-output:5x5x1152",
    "Conv_2-input:1x1x1152-output:1x1x1536", "Logits-input:1x1x1536-output:1000",
    "AvgPool2D-input:5x5x1152-output:1x1x1152"])
def test_fixed_ofa_layers_round_trip(key: str) -> None:
    assert OpSpec.from_key(key).key == key


def test_fixed_layers_reject_hyperparameters_their_key_cannot_express() -> None:
    with pytest.raises(ValueError):
        OpSpec("Conv_1", (7, 7, 160), (7, 7, 960), kernel=3, activation="hswish")


@pytest.mark.parametrize("key", [
    "", "expanded_conv", "expanded_conv-input:112x112x24", OFA_KEY.replace("kernel:5", "kernel:five"),
    OFA_KEY.replace("-hs:0", ""), OFA_KEY + "-hs:1", OFA_KEY.replace("idskip:0", "idskip:2"),
    OFA_KEY.replace("input:112x112x24", "input:112xx24"), "Conv-input:160x160x3-output:80x80x24-kernel:3",
    "conv-input:8x8x3-output:8x8x4-bogus:1", "conv-input:8x8x3-output:8x8x4-kernel:1",  # not canonical
])
def test_malformed_keys_name_the_key(key: str) -> None:
    with pytest.raises(TableError, match="malformed op key"):
        OpSpec.from_key(key)


dims = st.integers(min_value=1, max_value=512)


@given(h=dims, c_in=dims, c_out=dims, kernel=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]),
       expand=st.integers(0, 2048), groups=st.integers(1, 8), idskip=st.booleans(), se=st.booleans(),
       act=st.sampled_from(["none", "relu", "hswish"]), dtype=st.sampled_from(["float32", "int8"]))
def test_generic_keys_are_canonical_and_invertible(h: int, c_in: int, c_out: int, kernel: int, stride: int,
                                                   expand: int, groups: int, idskip: bool, se: bool, act: str,
                                                   dtype: str) -> None:
    spec = OpSpec("conv", (h, h, c_in), (h, h, c_out), kernel=kernel, stride=stride, expand=expand,
                  groups=groups, idskip=idskip, se=se, activation=act, dtype=dtype)
    assert OpSpec.from_key(spec.key) == spec


def test_latency_from_samples_trims_only_slow_outliers() -> None:
    samples = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0, 5.0]
    lat = Latency.from_samples(samples, "iqr")
    assert lat.n == 9 and lat.n_total == 10
    assert lat.max < 2 and math.isclose(lat.median, 1.0)
    assert lat.samples == tuple(samples)  # raw samples are kept
    assert Latency.from_samples(samples, "none").n == 10
    assert lat.cv < 0.02 < Latency.from_samples(samples, "none").cv


def test_latency_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Latency(mean=-1.0, std=0.0, n=1)
    with pytest.raises(ValueError):
        Latency(mean=float("nan"), std=0.0, n=1)


@pytest.mark.parametrize("kwargs", [{"runs": 0}, {"runs": -3}, {"warmup": -1}, {"threads": 0},
                                    {"outlier": "median"}, {"target_cv": 0}, {"runs": 50, "max_runs": 10}])
def test_bad_settings_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        BenchmarkSettings(**kwargs)


def test_settings_fingerprint_ignores_timeout_only() -> None:
    base = BenchmarkSettings()
    assert base.fingerprint == BenchmarkSettings(timeout_s=5).fingerprint
    assert base.fingerprint != BenchmarkSettings(runs=50).fingerprint
    assert base.fingerprint != BenchmarkSettings(threads=2).fingerprint


def _info(**kw: object) -> DeviceInfo:
    base = dict(name="cpu", kind="onnxruntime", hardware="Xeon", runtime="onnxruntime", runtime_version="1.0",
                tailorkit_version="0.1", threads=1, properties={"provider": "CPU"}, state={"freq_mhz": "2000"})
    base.update(kw)
    return DeviceInfo(**base)  # type: ignore[arg-type]


def test_device_fingerprint_is_stable_hardware_identity() -> None:
    fp = _info().fingerprint
    assert _info(name="other-name", state={"freq_mhz": "1200"}).fingerprint == fp
    assert _info(threads=2).fingerprint != fp
    assert _info(runtime_version="2.0").fingerprint != fp
    assert _info(properties={"provider": "CPU", "optimization": "disable"}).fingerprint != fp
    assert DeviceInfo.from_dict(_info(affinity=(1, 0)).to_dict()) == _info(affinity=(0, 1))


@pytest.mark.parametrize("kwargs", [{"runs": 2.5}, {"warmup": 1.5}, {"threads": 1.5}, {"threads": True},
                                    {"min_sample_ms": 1e308}, {"min_sample_ms": float("nan")},
                                    {"timeout_s": 0}, {"number": -1}])
def test_settings_reject_wrong_types_and_ranges(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        BenchmarkSettings(**kwargs)


def test_sample_limit_defaults_to_ten_batches() -> None:
    assert BenchmarkSettings(runs=5000).sample_limit == 50000
    assert BenchmarkSettings(runs=5, max_runs=7).sample_limit == 7


@pytest.mark.parametrize("kwargs", [{"median": -5.0}, {"n_total": -7}, {"number": 0}, {"number": "x"},
                                    {"p90": float("inf")}, {"mean": True}])
def test_latency_validates_every_statistic(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Latency(**{"mean": 1.0, "std": 0.1, "n": 3, **kwargs})


def test_zero_dims_in_a_key_are_malformed_not_a_crash() -> None:
    with pytest.raises(TableError, match="malformed op key"):
        OpSpec.from_key("Conv-input:8x8x3-output:0x0x16")
