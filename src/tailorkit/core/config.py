"""``tailor.toml``: the store URL, benchmark defaults and named devices, validated on load.

```toml
[store]
url = "sqlite:///tailor.db"

[benchmark]          # defaults for every measurement; command-line flags override them
warmup = 10
runs = 100

[devices.cpu2]       # a named device: `kind` picks the adapter, the other keys are its options
kind = "onnxruntime"
threads = 2
optimization = "disable"
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tailorkit.core.errors import ConfigError, UnknownNameError
from tailorkit.core.records import BenchmarkSettings

DEFAULT_STORE_URL = "sqlite:///tailor.db"
CONFIG_ENV = "TAILOR_CONFIG"
CONFIG_NAME = "tailor.toml"
BUILTIN_CPU = "cpu"
BUILTIN_LITERT = "litert"
BUILTIN_TVM = "tvm"  # TVM on this CPU (llvm), through .venv-tvm


@dataclass(frozen=True)
class DeviceConfig:
    """A named device: its adapter kind, the thread count its measurements default to, adapter options."""

    name: str
    kind: str
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TailorConfig:
    store_url: str = DEFAULT_STORE_URL
    benchmark: Mapping[str, Any] = field(default_factory=dict)
    devices: Mapping[str, DeviceConfig] = field(default_factory=dict)
    path: Path | None = None

    def device(self, name: str) -> DeviceConfig:
        try:
            return self.devices[name]
        except KeyError:
            raise UnknownNameError(f"unknown device {name!r}; known: {', '.join(sorted(self.devices))}") from None

    def settings(self, device: str | None = None, **overrides: Any) -> BenchmarkSettings:
        """Benchmark settings: flags (non-None ``overrides``) > the device's threads > [benchmark] > defaults."""
        values = dict(self.benchmark)
        if device is not None and self.device(device).threads is not None:
            values["threads"] = self.device(device).threads
        values.update({k: v for k, v in overrides.items() if v is not None})
        return BenchmarkSettings(**values)


def builtin_devices() -> dict[str, DeviceConfig]:
    return {BUILTIN_CPU: DeviceConfig(name=BUILTIN_CPU, kind="onnxruntime"),
            BUILTIN_LITERT: DeviceConfig(name=BUILTIN_LITERT, kind="litert"),
            BUILTIN_TVM: DeviceConfig(name=BUILTIN_TVM, kind="tvm")}


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: an explicit path (must exist), else $TAILOR_CONFIG, else ./tailor.toml if present."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"${CONFIG_ENV} points to {env!r}, which does not exist")
        return path
    path = Path.cwd() / CONFIG_NAME
    return path if path.is_file() else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> TailorConfig:
    path = find_config(explicit)
    if path is None:
        return TailorConfig(devices=builtin_devices())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> TailorConfig:
    where = str(path) if path else CONFIG_NAME
    unknown = set(data) - {"store", "benchmark", "devices"}
    if unknown:
        raise ConfigError(f"{where}: unknown sections {sorted(unknown)}; known: store, benchmark, devices")

    store = _table(data, "store", where)
    unknown = set(store) - {"url"}
    if unknown:
        raise ConfigError(f"{where}: [store] has unknown keys {sorted(unknown)}; known: url")
    url = store.get("url", DEFAULT_STORE_URL)
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: [store] url must be a non-empty string")

    benchmark = dict(_table(data, "benchmark", where))
    known = {f.name for f in fields(BenchmarkSettings)}
    unknown = set(benchmark) - known
    if unknown:
        raise ConfigError(f"{where}: [benchmark] has unknown keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        BenchmarkSettings(**benchmark)
    except ConfigError as exc:
        raise ConfigError(f"{where}: [benchmark] {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: [benchmark] {exc}") from None

    devices = builtin_devices()
    for name, section in _table(data, "devices", where).items():
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: [devices.{name}] must be a table")
        section = dict(section)
        kind = section.pop("kind", None)
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{where}: [devices.{name}] needs kind = \"...\" (e.g. \"onnxruntime\")")
        threads = section.pop("threads", None)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"{where}: [devices.{name}] threads must be an integer >= 1, got {threads!r}")
        devices[name] = DeviceConfig(name=name, kind=kind, threads=threads, options=section)
    return TailorConfig(store_url=url, benchmark=benchmark, devices=devices, path=path)


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value
