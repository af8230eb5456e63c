"""An Android phone over ADB running TFLite's ``benchmark_model``: end-to-end and per-op latency where users
deploy.

One session per connection: a first shell reads the phone (getprop, cores, the binary's hash on the phone) and
makes a per-run directory under ``/data/local/tmp/tailorkit/``; the binary is pushed only when the phone's copy
differs, each model once; each measurement is then a single shell that waits (bounded) for the phone to cool,
records its state, runs the benchmark pinned with ``taskset`` and records the state again. ``close`` removes the
run directory. Every device-side argument goes through :func:`shlex.quote`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorkit.core.documents import sha256_file
from tailorkit.core.errors import ConfigError, DeviceError, ModelFormatError
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency, OpLatency
from tailorkit.core.version import __version__
from tailorkit.devices.adb import AdbConnection
from tailorkit.devices.base import Device
from tailorkit.devices.tflite_benchmark import BenchmarkOutput, parse_benchmark_output
from tailorkit.export.tflite import tflite_input_shape

log = logging.getLogger(__name__)

DEVICE_ROOT = "/data/local/tmp/tailorkit"
_PROPS = ("ro.product.manufacturer", "ro.product.model", "ro.soc.manufacturer", "ro.soc.model",
          "ro.board.platform", "ro.hardware", "ro.build.version.sdk", "ro.build.version.release",
          "ro.product.cpu.abi", "ro.product.cpu.abilist")
# ELF e_machine → the Android ABI that runs it
_ELF_ABIS = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86", 243: "riscv64"}
_CORES_RE = re.compile(r"^(all|big|little|0x[0-9a-fA-F]+)$")
_EXEC_FAILURES = ("not executable", "Exec format error", "cannot execute", "No such file or directory",
                  "not found", "Permission denied", "syntax error", "unexpected")

# Shell functions every device-side script starts with. ``hot`` sets $t to the hottest plausible thermal zone in
# millidegrees (zones report m°C, a few °C; sensors that read 0, negative or absurd values are skipped); ``state``
# prints one line per reading of the chosen cores' frequency and governor and of the battery. Files are read with
# the ``read`` builtin, not ``$(cat …)``: a phone's shell forks for every substitution, a few ms each.
_PRELUDE = r"""rd() { r=; { read -r r < "$1"; } 2>/dev/null || [ -n "$r" ]; }
hot() { t=0; for z in THERMAL/thermal_zone*/temp; do rd "$z" || continue; v=$r
case "$v" in ''|-*|*[!0-9]*) continue;; esac
[ "$v" -lt 1000 ] && v=$((v * 1000)); [ "$v" -le 150000 ] && [ "$v" -gt "$t" ] && t=$v; done; }
state() { w="$1"; shift; hot; echo "__tailor_state:$w:thermal_mc=$t"
for c in "$@"; do f=/sys/devices/system/cpu/cpu$c/cpufreq; rd $f/scaling_cur_freq; q=$r; rd $f/scaling_governor
echo "__tailor_state:$w:cpu$c=$q,$r"; done
b=BATTERY; rd $b/capacity; q=$r; rd $b/temp; echo "__tailor_state:$w:battery=$q,$r"; }
"""


@dataclass(frozen=True)
class _Session:
    run_dir: str
    binary: str  # path on the phone
    binary_sha: str
    props: dict[str, str]
    max_khz: dict[int, int]  # core → cpuinfo_max_freq (empty where cpufreq is not exposed)
    cores: tuple[int, ...]


class AndroidDevice(Device):
    """Options (``[devices.NAME]`` in tailor.toml): ``transport`` "tcp" (``host``, ``port``: wireless debugging or
    ``adb tcpip``) or "usb" (``serial``); ``benchmark_binary``: the user's Android build of TFLite's
    benchmark_model; ``cores``: "all", "big" (the fastest cluster), "little" (the slowest) or a hex mask such as
    "0x70"; ``delegate``: "cpu" (built-in kernels), "xnnpack", "gpu" or "nnapi"; ``cooldown_c``: wait (at most
    ``cooldown_wait_s``) until the hottest thermal zone is at or below this before each run; ``adb_key``: the
    private key to use (default: ``~/.android/adbkey`` when present, else one generated for tailorkit);
    ``retries``: reconnect attempts when the phone goes away."""

    kind = "android"
    model_format = "tflite"
    DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
    # where the phone exposes its sensors (instance attributes so a test can point them into a sandbox)
    thermal_dir = "/sys/class/thermal"
    battery_dir = "/sys/class/power_supply/battery"

    def __init__(self, name: str = "android", transport: str = "tcp", host: str = "127.0.0.1", port: int = 5555,
                 serial: str | None = None, benchmark_binary: str | None = None, cores: str = "all",
                 delegate: str = "xnnpack", cooldown_c: float | None = None, cooldown_wait_s: float = 120.0,
                 adb_key: str | None = None, connect_timeout_s: float = 10.0, auth_timeout_s: float = 30.0,
                 retries: int = 3, backoff_s: float = 0.5) -> None:
        super().__init__(name)
        if delegate not in self.DELEGATES:
            raise ConfigError(f"device {name!r}: delegate must be one of {', '.join(self.DELEGATES)}, got {delegate!r}")
        if not isinstance(cores, str) or not _CORES_RE.match(cores) or cores.lower() == "0x0":
            raise ConfigError(f"device {name!r}: cores must be \"all\", \"big\", \"little\" or a hex mask like "
                              f"\"0x70\", got {cores!r}")
        for option, value in (("cooldown_c", cooldown_c), ("cooldown_wait_s", cooldown_wait_s),
                              ("backoff_s", backoff_s)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"device {name!r}: {option} must be a number >= 0, got {value!r}")
        self.connection = AdbConnection(name, transport=transport, host=host, port=port, serial=serial, key=adb_key,
                                        connect_timeout_s=connect_timeout_s, auth_timeout_s=auth_timeout_s,
                                        retries=retries, backoff_s=backoff_s)
        self.benchmark_binary = Path(benchmark_binary).expanduser() if benchmark_binary else None
        self.cores_option = cores
        self.delegate = delegate
        self.cooldown_c = cooldown_c
        self.cooldown_wait_s = float(cooldown_wait_s)
        self._session: _Session | None = None
        self._pushed: dict[str, str] = {}  # model sha256 → path on the phone
        self._state: dict[str, str] = {}
        self.last_output: BenchmarkOutput | None = None  # what the latest benchmark printed, parsed

    # ------------------------------------------------------------------------------------------- lifecycle

    def connect(self) -> None:
        self._ensure_session()

    def close(self) -> None:
        session, self._session = self._session, None
        self._pushed.clear()
        if session is not None:
            try:
                self.connection.shell(f"rm -rf {shlex.quote(session.run_dir)}", timeout_s=30)
            except DeviceError as exc:
                log.warning("device %s: could not remove %s: %s", self.name, session.run_dir, exc)
        self.connection.close()

    def check(self) -> str | None:
        try:
            self._ensure_session()
        except (DeviceError, ConfigError) as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a status check reports, it does not raise
            return f"{type(exc).__name__}: {exc}"
        return None

    def info(self, settings: BenchmarkSettings | None = None) -> DeviceInfo:
        session = self._ensure_session()
        props = session.props
        soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or "unknown"
        maker = props.get("ro.product.manufacturer", "")
        model = props.get("ro.product.model") or "unknown phone"
        hardware = f"{'' if model.lower().startswith(maker.lower()) else maker + ' '}{model} ({soc})".strip()
        properties = {
            "soc": soc, "platform": props.get("ro.board.platform", ""), "sdk": props.get("ro.build.version.sdk", ""),
            "android": props.get("ro.build.version.release", ""), "abi": props.get("ro.product.cpu.abi", ""),
            "delegate": self.delegate, "cores": self.cores_option, "core_mask": hex(_mask(session.cores)),
        }
        if session.max_khz:
            properties["cpu_max_mhz"] = ",".join(str(session.max_khz[c] // 1000) for c in sorted(session.max_khz))
        return DeviceInfo(name=self.name, kind=self.kind, hardware=hardware, runtime="tflite benchmark_model",
                          runtime_version=f"sha256:{session.binary_sha[:16]}", tailorkit_version=__version__,
                          threads=settings.threads if settings else 1, affinity=session.cores,
                          properties=properties, state=dict(self._state))

    # -------------------------------------------------------------------------------------------- measuring

    def run_model(self, path: str | Path, settings: BenchmarkSettings,
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Latency:
        return self._benchmark(path, settings, input_shapes, op_profiling=False).latency()

    def profile_ops(self, path: str | Path, settings: BenchmarkSettings,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[OpLatency]:
        result = self._benchmark(path, settings, input_shapes, op_profiling=True)
        try:
            return result.op_latencies()
        except ModelFormatError:
            raise DeviceError(f"device {self.name!r}: benchmark_model printed no per-op profile; it needs a build "
                              "with op profiling (the official one has it). tailorkit's host runner, used with "
                              "the loopback peer, has none") from None

    def _benchmark(self, path: str | Path, settings: BenchmarkSettings,
                   input_shapes: Mapping[str, Sequence[int]] | None, *, op_profiling: bool) -> BenchmarkOutput:
        path = Path(path)
        if path.suffix.lower() != ".tflite":
            raise ModelFormatError(f"device {self.name!r} runs .tflite files; {str(path)!r} is not one "
                                   "(export with --format tflite)")
        if not path.is_file():
            raise ModelFormatError(f"model file {str(path)!r} does not exist")
        _check_shapes(path, input_shapes)
        if settings.target_cv is not None:
            log.info("device %s: benchmark_model has no CV target; running %d timed runs", self.name, settings.runs)
        session = self._ensure_session()
        model = self._push_model(session, path)
        flags = [f"--graph={model}", f"--num_threads={settings.threads}", f"--warmup_runs={settings.warmup}",
                 "--warmup_min_secs=0", f"--num_runs={settings.runs}", "--min_secs=0",
                 f"--max_secs={settings.timeout_s:g}", f"--use_xnnpack={str(self.delegate == 'xnnpack').lower()}",
                 f"--enable_op_profiling={str(op_profiling).lower()}"]
        if self.delegate in ("gpu", "nnapi"):
            flags.append(f"--use_{self.delegate}=true")
        command = shlex.join(["taskset", format(_mask(session.cores), "x"), session.binary, *flags])
        limit_mc = int(self.cooldown_c * 1000) if self.cooldown_c is not None else None
        wait = int(self.cooldown_wait_s) if limit_mc is not None else 0
        cores = " ".join(str(c) for c in session.cores)
        script = (self._prelude() + f"waited=0\nwhile [ {wait} -gt 0 ]; do hot\n"
                  f"[ \"$t\" -gt {limit_mc or 0} ] && [ \"$waited\" -lt {wait} ] || break\n"
                  "sleep 1; waited=$((waited + 1)); done\n"
                  f"echo \"__tailor_waited=$waited\"\nstate before {cores}\n"
                  f"cd {shlex.quote(session.run_dir)} && {command} 2>&1\nrc=$?\nstate after {cores}\n"
                  "(exit $rc)")
        result = self.connection.shell(script, timeout_s=settings.timeout_s + wait + 60)
        lines, state, hot_before = _split_state(result.output)
        if wait and state.get("cooldown_waited_s", "0") != "0":
            log.info("device %s waited %s s to cool below %s °C", self.name, state["cooldown_waited_s"],
                     self.cooldown_c)
        if limit_mc is not None:
            state["cooldown_c"] = f"{self.cooldown_c:g}"
            state["cooldown_timed_out"] = str(hot_before is not None and hot_before > limit_mc).lower()
        self._state = state
        text = "\n".join(lines)
        if result.returncode in (126, 127) or (result.returncode and _exec_failure(text)):
            raise DeviceError(f"device {self.name!r}: benchmark_model could not start on the phone "
                              f"({_last_line(text)}); benchmark_binary must be an Android build for "
                              f"{session.props.get('ro.product.cpu.abi', 'its ABI')}")
        self.last_output = parse_benchmark_output(text, returncode=result.returncode)
        return self.last_output

    # --------------------------------------------------------------------------------------------- session

    def _ensure_session(self) -> _Session:
        if self._session is not None:
            return self._session
        binary = self._binary()
        local_sha = sha256_file(binary)
        remote_binary = f"{DEVICE_ROOT}/bin/benchmark_model-{local_sha[:16]}"
        run_dir = f"{DEVICE_ROOT}/run-{os.getpid()}-{secrets.token_hex(4)}"
        keys = " ".join(shlex.quote(k) for k in _PROPS)
        dirs = shlex.join([run_dir, f"{DEVICE_ROOT}/bin"])
        script = (self._prelude() + f"mkdir -p {dirs} || echo __tailor_mkdir_failed\n"
                  f"for k in {keys}; do printf '__tailor_prop:%s=%s\\n' \"$k\" \"$(getprop \"$k\")\"; done\n"
                  "for c in /sys/devices/system/cpu/cpu[0-9]*; do rd $c/cpufreq/cpuinfo_max_freq\n"
                  "echo \"__tailor_cpu:${c##*/cpu}=$r\"; done\n"
                  f"echo \"__tailor_sha=$(sha256sum {shlex.quote(remote_binary)} 2>/dev/null)\"\n"
                  "state now")
        result = self.connection.shell(script, timeout_s=60)
        if "__tailor_mkdir_failed" in result.output:
            raise DeviceError(f"device {self.name!r}: cannot create {run_dir} on the phone: "
                              f"{_last_line(result.output)}")
        props: dict[str, str] = {}
        max_khz: dict[int, int] = {}
        all_cores: list[int] = []
        remote_sha = ""
        for line in result.output.splitlines():
            if line.startswith("__tailor_prop:"):
                key, _, value = line[len("__tailor_prop:"):].partition("=")
                props[key] = value.strip()
            elif line.startswith("__tailor_cpu:"):
                core, _, khz = line[len("__tailor_cpu:"):].partition("=")
                if core.isdigit():
                    all_cores.append(int(core))
                    if khz.strip().isdigit():
                        max_khz[int(core)] = int(khz)
            elif line.startswith("__tailor_sha="):
                remote_sha = line.partition("=")[2].split(" ")[0].strip()
        _check_abi(self.name, binary, props)
        cores = _choose_cores(self.name, self.cores_option, sorted(all_cores), max_khz)
        if remote_sha != local_sha:
            log.info("device %s: pushing %s (%d bytes)", self.name, binary.name, binary.stat().st_size)
            self.connection.push(binary, remote_binary, mode=0o755)
        self._state = _split_state(result.output)[1]
        self._session = _Session(run_dir=run_dir, binary=remote_binary, binary_sha=local_sha, props=props,
                                 max_khz=max_khz, cores=cores)
        return self._session

    def _prelude(self) -> str:
        return _PRELUDE.replace("THERMAL", shlex.quote(self.thermal_dir)).replace("BATTERY",
                                                                                  shlex.quote(self.battery_dir))

    def _binary(self) -> Path:
        if self.benchmark_binary is None:
            raise ConfigError(f"device {self.name!r} needs benchmark_binary = \"path/to/benchmark_model\": an "
                              "Android build of TFLite's benchmark tool (README: Android phones)")
        if not self.benchmark_binary.is_file():
            raise ConfigError(f"device {self.name!r}: benchmark_binary {str(self.benchmark_binary)!r} does not exist")
        return self.benchmark_binary

    def _push_model(self, session: _Session, path: Path) -> str:
        sha = sha256_file(path)
        if sha not in self._pushed:
            remote = f"{session.run_dir}/model-{sha[:16]}.tflite"
            self.connection.push(path, remote, mode=0o644)
            self._pushed[sha] = remote
        return self._pushed[sha]


# ------------------------------------------------------------------------------------------------ helpers


def _mask(cores: Sequence[int]) -> int:
    return sum(1 << c for c in cores)


def _choose_cores(name: str, option: str, cores: list[int], max_khz: Mapping[int, int]) -> tuple[int, ...]:
    """The cores ``option`` names on this phone. Big and little are the clusters with the highest and lowest
    maximum frequency; where cpufreq is hidden they are all cores (logged)."""
    if not cores:
        raise DeviceError(f"device {name!r}: the phone lists no CPU cores under /sys/devices/system/cpu")
    if option == "all":
        return tuple(cores)
    if option in ("big", "little"):
        known = {c: max_khz[c] for c in cores if c in max_khz}
        if not known:
            log.warning("device %s exposes no cpufreq: cores = %r means all cores", name, option)
            return tuple(cores)
        target = max(known.values()) if option == "big" else min(known.values())
        return tuple(c for c in cores if known.get(c) == target)
    mask = int(option, 16)
    chosen = tuple(c for c in cores if mask >> c & 1)
    missing = [bit for bit in range(mask.bit_length()) if mask >> bit & 1 and bit not in cores]
    if missing or not chosen:
        raise ConfigError(f"device {name!r}: cores = {option!r} names cores {missing or 'none'} the phone does not "
                          f"have (it has {','.join(map(str, cores))})")
    return chosen


def _check_abi(name: str, binary: Path, props: Mapping[str, str]) -> None:
    """Refuse an ELF built for an ABI the phone cannot run before pushing it (scripts run as they are)."""
    with binary.open("rb") as f:
        head = f.read(20)
    if head[:2] == b"#!":
        return
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise ConfigError(f"device {name!r}: benchmark_binary {str(binary)!r} is not an executable (no ELF header)")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    abi = _ELF_ABIS.get(machine, f"ELF machine {machine}")
    supported = [a for a in (props.get("ro.product.cpu.abilist") or props.get("ro.product.cpu.abi", "")).split(",")
                 if a]
    if supported and abi not in supported:
        raise ConfigError(f"device {name!r}: benchmark_binary {str(binary)!r} is built for {abi}; the phone runs "
                          f"{', '.join(supported)} (build TFLite's benchmark_model for android_arm64)")


def _check_shapes(path: Path, input_shapes: Mapping[str, Sequence[int]] | None) -> None:
    if not input_shapes:
        return
    wanted = [tuple(int(d) for d in shape) for shape in input_shapes.values()]
    own = tflite_input_shape(path)
    if wanted != [own]:
        raise ModelFormatError(f"benchmark_model runs a .tflite at its own input shape {own}; asked for {wanted} "
                               "(export the model at that shape)")


def _split_state(output: str) -> tuple[list[str], dict[str, str], int | None]:
    """The benchmark's lines; the state lines our scripts print, as DeviceInfo.state entries; and the hottest
    zone in m°C just before the benchmark ran (what the cool-down limit is checked against)."""
    lines: list[str] = []
    raw: dict[str, dict[str, str]] = {}
    state: dict[str, str] = {}
    hot_before = None
    for line in output.splitlines():
        if line.startswith("__tailor_state:"):
            when, _, rest = line[len("__tailor_state:"):].partition(":")
            key, _, value = rest.partition("=")
            raw.setdefault(when, {})[key] = value.strip()
        elif line.startswith("__tailor_waited="):
            state["cooldown_waited_s"] = line.partition("=")[2].strip()
        else:
            lines.append(line)
    for when, values in raw.items():
        suffix = "" if when == "now" else f"_{when}"
        mc = _to_int(values.get("thermal_mc"))
        if mc:
            state[f"thermal_c{suffix}"] = f"{mc / 1000:.1f}"
        if when == "before":
            hot_before = mc
        freqs, governors = [], set()
        for key, value in values.items():
            if key.startswith("cpu"):
                khz, _, governor = value.partition(",")
                if khz.isdigit():
                    freqs.append(int(khz))
                if governor:
                    governors.add(governor)
        if freqs:
            state[f"freq_mhz{suffix}"] = f"{sum(freqs) / len(freqs) / 1000:.0f}"
        if governors:
            state[f"governor{suffix}"] = ",".join(sorted(governors))
        level, _, tenths = values.get("battery", "").partition(",")
        if level.isdigit():
            state[f"battery_pct{suffix}"] = level
        if tenths.lstrip("-").isdigit():
            state[f"battery_c{suffix}"] = f"{int(tenths) / 10:.1f}"
    return lines, state, hot_before


def _to_int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _exec_failure(text: str) -> bool:
    return "STARTING!" not in text and any(marker in text for marker in _EXEC_FAILURES)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"
