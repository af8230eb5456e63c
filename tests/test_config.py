from __future__ import annotations

from pathlib import Path

import pytest

from tailorkit.core import ConfigError, Registry, UnknownNameError
from tailorkit.core.config import load_config, parse_config
from tailorkit.devices import create_device, devices


def test_builtin_cpu_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAILOR_CONFIG", raising=False)
    config = load_config()
    assert list(config.devices) == ["cpu", "litert", "tvm"] and config.devices["cpu"].kind == "onnxruntime"
    assert config.devices["litert"].kind == "litert" and config.devices["tvm"].kind == "tvm"
    assert config.store_url == "sqlite:///tailor.db"


def test_file_devices_and_settings_precedence(tmp_path: Path) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text('[store]\nurl = "sqlite:///x.db"\n[benchmark]\nruns = 20\nwarmup = 3\n'
                    '[devices.fast]\nkind = "onnxruntime"\nthreads = 2\noptimization = "disable"\n'
                    '[devices.pixel]\nkind = "android"\ntransport = "usb"\nserial = "abc"\ncores = "big"\n'
                    '[devices.jetson]\nkind = "tensorrt"\n')
    config = load_config(path)
    assert config.store_url == "sqlite:///x.db"
    assert set(config.devices) == {"cpu", "litert", "tvm", "fast", "pixel", "jetson"}
    assert config.settings("fast").threads == 2 and config.settings("fast").runs == 20
    assert config.settings("fast", threads=4, runs=None).threads == 4
    assert config.settings("cpu").threads == 1
    device = create_device(config.device("fast"))
    assert device.info().properties["optimization"] == "disable"
    pixel = create_device(config.device("pixel"))  # nothing is contacted until it is used
    assert pixel.kind == "android" and pixel.connection.target == "usb:abc" and pixel.cores_option == "big"
    with pytest.raises(UnknownNameError, match="known: android, litert, onnxruntime"):
        create_device(config.device("jetson"))


@pytest.mark.parametrize("text, match", [
    ("[devices.x\nkind='onnxruntime'", "not valid TOML"),
    ("[devices.x]\nthreads = 2\n", "needs kind"),
    ("[devices.x]\nkind = 'onnxruntime'\nthreads = 0\n", "threads must be"),
    ("[benchmark]\nruns = 0\n", "runs must be >= 1"),
    ("[benchmark]\nrunz = 3\n", "unknown keys"),
    ("[benchmark]\nruns = 'ten'\n", r"\[benchmark\]"),
    ("[stuff]\na = 1\n", "unknown sections"),
    ("store = 3\n", r"\[store\] must be a table"),
])
def test_malformed_config_is_a_clear_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_missing_explicit_config() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/tailor.toml")


def test_unknown_device_option_lists_known_ones() -> None:
    config = parse_config({"devices": {"x": {"kind": "onnxruntime", "optimisation": "all"}}})
    with pytest.raises(ConfigError, match="unknown options \\['optimisation'\\]"):
        create_device(config.device("x"))


def test_unknown_device_name_lists_known() -> None:
    with pytest.raises(UnknownNameError, match="known: cpu"):
        parse_config({}).device("gpu")


def test_registry() -> None:
    reg: Registry[object] = Registry("things")
    reg.register("a")(dict)
    assert reg.names() == ["a"] and "a" in reg and reg.create("a", x=1) == {"x": 1}
    with pytest.raises(UnknownNameError, match="unknown things 'b'; known: a"):
        reg.get("b")
    with pytest.raises(ValueError):
        reg.register("a")(list)
    assert "onnxruntime" in devices
