"""The Android device over real ADB, against the loopback peer: config → connect → push → run → parse → store.

The peer speaks ADB's wire protocol on 127.0.0.1 and runs shell commands on this host; the benchmark binary is
tailorkit's host runner (real LiteRT runs, the real tool's output format). Per-op rows need a phone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("adb_shell", reason="the android device needs adb-shell (pip install 'tailorkit[android]')")
pytest.importorskip("ai_edge_litert", reason="the host benchmark runner needs ai-edge-litert")

from tailorkit.core.errors import ConfigError, DeviceError  # noqa: E402
from tailorkit.core.records import BenchmarkSettings  # noqa: E402
from tailorkit.devices.adb import adb_key_path  # noqa: E402
from tailorkit.devices.android import AndroidDevice, _choose_cores, _split_state  # noqa: E402
from tailorkit.profiler.store import TableStore  # noqa: E402
from tailorkit.testing.adb_peer import LoopbackAdbPeer  # noqa: E402
from tailorkit.testing.benchmark_model import write_launcher  # noqa: E402

from .conftest import run_cli  # noqa: E402

SETTINGS = BenchmarkSettings(warmup=1, runs=5, timeout_s=60)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_launcher(tmp_path_factory.mktemp("bin") / "benchmark_model")


@pytest.fixture(scope="module")
def adb_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adb_shell.auth.keygen import keygen

    path = tmp_path_factory.mktemp("keys") / "adbkey"
    keygen(str(path))
    return path


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[LoopbackAdbPeer]:
    with LoopbackAdbPeer(tmp_path / "phone") as running:
        yield running


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from tailorkit.export.tflite import TfliteExporter

    from .conftest import SmallCNN

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "small.tflite"
    TfliteExporter().export(SmallCNN().eval(), torch.randn(1, 3, 32, 32), path)
    return path


def _device(peer: LoopbackAdbPeer, launcher: Path, adb_key: Path, **options: object) -> AndroidDevice:
    return AndroidDevice("phone", host=peer.host, port=peer.port, benchmark_binary=str(launcher),
                         adb_key=str(adb_key), **options)  # type: ignore[arg-type]


def _config(tmp_path: Path, peer: LoopbackAdbPeer, launcher: Path, adb_key: Path, extra: str = "") -> Path:
    path = tmp_path / "tailor.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "phone.db"}"\n'
                    f'[devices.phone]\nkind = "android"\ntransport = "tcp"\nhost = "{peer.host}"\nport = {peer.port}\n'
                    f'benchmark_binary = "{launcher}"\nadb_key = "{adb_key}"\ncores = "big"\nthreads = 1\n'
                    f'delegate = "xnnpack"\n{extra}')
    return path


def test_profile_from_config_runs_on_the_phone_with_few_round_trips(tmp_path: Path, peer: LoopbackAdbPeer,
                                                                    launcher: Path, adb_key: Path,
                                                                    tflite_model: Path, small_onnx: Path) -> None:
    config = _config(tmp_path, peer, launcher, adb_key)
    (tmp_path / "mymodel.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.c = torch.nn.Conv2d(3, 8, 3)\n    def forward(self, x):\n        return self.c(x).relu()\n")
    # a torch module is converted to TFLite on the host before it goes to the phone
    result = run_cli("profile", "mymodel:Net", "--shape", "1x3x64x64", "--device", "phone", "--runs", "5",
                     "--warmup", "1", "--json", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["device"]["kind"] == "android" and "tailorkit loopback" in data["device"]["hardware"]
    assert data["device"]["runtime"] == "tflite benchmark_model"
    assert data["device"]["properties"]["abi"] and data["device"]["properties"]["delegate"] == "xnnpack"
    assert data["latency_ms"]["n"] == 5 and data["latency_ms"]["mean"] > 0
    assert data["latency_ms"]["min"] <= data["latency_ms"]["mean"] <= data["latency_ms"]["max"]
    assert data["device"]["affinity"] and data["device"]["properties"]["core_mask"].startswith("0x")
    stats = peer.stats
    assert data["input_shapes"] == {"input": [1, 3, 64, 64]}
    # one push of the model, one of the binary (a new phone), and three shells: the session's set-up, the
    # benchmark and the clean-up
    assert [Path(p).name.split("-")[0] for p, _ in stats.pushes] == ["benchmark_model", "model"]
    assert len(stats.shell_commands) == 3 and "taskset" in stats.shell_commands[1]
    assert "--num_runs=5" in stats.shell_commands[1] and "--warmup_runs=1" in stats.shell_commands[1]
    tailor_dir = peer.device_path("/data/local/tmp/tailorkit")
    assert [p.name for p in tailor_dir.iterdir()] == ["bin"]  # the run directory is gone, the binary stays

    peer.reset_stats()
    again = run_cli("profile", str(tflite_model), "--device", "phone", "--runs", "3", "--warmup", "1", "--json",
                    "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["latency_ms"]["n"] == 3
    assert [Path(p).name.split("-")[0] for p, _ in peer.stats.pushes] == ["model"]  # the binary's hash matched

    peer.reset_stats()  # an ONNX file is converted to TFLite on the host (export/onnx_import.py)
    onnx_run = run_cli("profile", str(small_onnx), "--device", "phone", "--runs", "3", "--warmup", "1", "--json",
                       "--config", str(config))
    assert onnx_run.returncode == 0, onnx_run.stderr
    assert json.loads(onnx_run.stdout)["model"] == "small.onnx (as tflite)"
    assert [Path(p).name.split("-")[0] for p, _ in peer.stats.pushes] == ["model"]
    assert Path(peer.stats.pushes[0][0]).suffix == ".tflite"


def test_table_on_the_phone_keeps_its_rows_when_unplugged_and_resumes(tmp_path: Path, peer: LoopbackAdbPeer,
                                                                   launcher: Path, adb_key: Path) -> None:
    config = _config(tmp_path, peer, launcher, adb_key, extra="retries = 2\nbackoff_s = 0.05\n")
    # set-up shell, then two benchmarks: the cable is pulled as the second op's benchmark finishes
    peer.drop_after_shells = 2
    peer.refuse_after_drop = True
    args = ("table", "build", "--space", "ofa-mbv3", "--device", "phone", "--resolution", "128", "--runs", "3",
            "--warmup", "1", "--limit", "3", "--config", str(config))
    broken = run_cli(*args)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    message = broken.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "'phone'" in message and "rerun to resume" in message
    with TableStore(f"sqlite:///{tmp_path / 'phone.db'}") as store:
        kept = len(store.table("ofa-mbv3-w1-r128"))
    assert kept == 1
    peer.drop_after_shells = None
    peer.restore()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 measured now, 1 already" in resumed.stdout and "left for a rerun" in resumed.stdout  # --limit 3
    with TableStore(f"sqlite:///{tmp_path / 'phone.db'}") as store:
        table = store.table("ofa-mbv3-w1-r128", device="phone")
    assert len(table) == 4 and table.device.kind == "android" and table.settings.runs == 3
    assert all(latency.mean > 0 and latency.n == 3 for latency in table.entries.values())


def test_a_dropped_connection_is_reopened_and_the_run_completes(tmp_path: Path, peer: LoopbackAdbPeer,
                                                                launcher: Path, adb_key: Path,
                                                                tflite_model: Path) -> None:
    device = _device(peer, launcher, adb_key, backoff_s=0.05)
    with device:
        first = device.run_model(tflite_model, SETTINGS)
        peer.disconnect_all()  # adbd restarted between two measurements
        second = device.run_model(tflite_model, SETTINGS)
    assert first.mean > 0 and second.mean > 0
    assert device.connection.counters.reconnects == 1
    assert len(peer.stats.pushes) == 2  # binary and model, each once: the run directory survived on the phone


def test_per_op_needs_a_phone_and_says_so(peer: LoopbackAdbPeer, launcher: Path, adb_key: Path,
                                         tflite_model: Path) -> None:
    with _device(peer, launcher, adb_key) as device, pytest.raises(DeviceError, match="no per-op profile"):
        device.profile_ops(tflite_model, SETTINGS)


def test_the_phone_asking_for_the_key_is_a_clear_error(tmp_path: Path, launcher: Path, adb_key: Path) -> None:
    with LoopbackAdbPeer(tmp_path / "phone", auth="keys", accept_new_keys=False) as peer:
        device = _device(peer, launcher, adb_key, auth_timeout_s=1.0)
        with pytest.raises(DeviceError, match="tap Allow.*Allow USB debugging") as err:
            device.connect()
        assert str(adb_key) in str(err.value) and peer.stats.auth_prompts == 1
        assert device.check() is not None


def test_an_authorized_key_connects_without_a_prompt(tmp_path: Path, launcher: Path, adb_key: Path) -> None:
    public = Path(f"{adb_key}.pub").read_text()
    with LoopbackAdbPeer(tmp_path / "phone", auth="keys", authorized_keys=[public]) as peer:
        device = _device(peer, launcher, adb_key)
        assert device.check() is None
        device.close()
        assert peer.stats.auth_prompts == 0


def test_key_discovery_reuses_the_users_adb_key_else_generates_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANDROID_USER_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    generated = adb_key_path()
    assert generated == tmp_path / "config" / "tailorkit" / "adbkey"
    assert generated.is_file() and Path(f"{generated}.pub").is_file() and generated.stat().st_mode & 0o077 == 0
    assert adb_key_path() == generated  # generated once
    users = tmp_path / "home" / ".android" / "adbkey"
    users.parent.mkdir(parents=True)
    users.write_text(generated.read_text())
    assert adb_key_path() == users  # the phone already trusts this one
    with pytest.raises(ConfigError, match="does not exist"):
        adb_key_path(tmp_path / "nope")


def test_binary_for_another_abi_is_refused_before_pushing(tmp_path: Path, peer: LoopbackAdbPeer,
                                                          adb_key: Path) -> None:
    abi = peer.properties["ro.product.cpu.abi"]
    foreign = 40 if abi != "armeabi-v7a" else 62  # an ELF the loopback phone does not run
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + foreign.to_bytes(2, "little") + bytes(44))
    with pytest.raises(ConfigError, match="is built for .*the phone runs"):
        _device(peer, binary, adb_key).connect()
    assert peer.stats.pushes == ()


def test_binary_that_cannot_start_on_the_phone_is_a_clear_error(tmp_path: Path, peer: LoopbackAdbPeer,
                                                                adb_key: Path, tflite_model: Path) -> None:
    binary = tmp_path / "benchmark_model"
    binary.write_text("#!/nonexistent/interpreter\n")
    with _device(peer, binary, adb_key) as device, pytest.raises(DeviceError, match="could not start"):
        device.run_model(tflite_model, SETTINGS)
    with pytest.raises(ConfigError, match="needs benchmark_binary"):
        AndroidDevice("phone", host=peer.host, port=peer.port).connect()


def test_a_hot_phone_waits_to_cool_and_records_it(peer: LoopbackAdbPeer, launcher: Path, adb_key: Path,
                                                  tflite_model: Path) -> None:
    zone = peer.device_path("/data/local/tmp/fake-sys/thermal/thermal_zone0/temp")
    zone.parent.mkdir(parents=True)
    zone.write_text("52000\n")
    device = _device(peer, launcher, adb_key, cooldown_c=45, cooldown_wait_s=20)
    device.thermal_dir = "/data/local/tmp/fake-sys/thermal"
    cooler = threading.Timer(1.5, lambda: zone.write_text("41000\n"))
    with device:
        cooler.start()
        device.run_model(tflite_model, SETTINGS)
        state = device.info(SETTINGS).state
        assert int(state["cooldown_waited_s"]) >= 1 and state["cooldown_timed_out"] == "false"
        assert state["thermal_c_before"] == "41.0"
        # a phone that stays hot waits only as long as allowed, and says so
        zone.write_text("60000\n")
        device.cooldown_wait_s = 1
        device.run_model(tflite_model, SETTINGS)
        state = device.info(SETTINGS).state
        assert state["cooldown_waited_s"] == "1" and state["cooldown_timed_out"] == "true"
    cooler.cancel()


def test_cores_big_little_and_masks() -> None:
    cores = list(range(8))
    khz = {0: 1_800_000, 1: 1_800_000, 2: 1_800_000, 3: 1_800_000, 4: 2_400_000, 5: 2_400_000, 6: 2_400_000,
           7: 2_850_000}
    assert _choose_cores("p", "big", cores, khz) == (7,)
    assert _choose_cores("p", "little", cores, khz) == (0, 1, 2, 3)
    assert _choose_cores("p", "0x70", cores, khz) == (4, 5, 6)
    assert _choose_cores("p", "all", cores, khz) == tuple(cores)
    assert _choose_cores("p", "big", [0, 1], {}) == (0, 1)  # no cpufreq: all cores
    with pytest.raises(ConfigError, match=r"names cores \[8\]"):
        _choose_cores("p", "0x100", cores, khz)
    for bad in ("fast", "0x0", "70"):
        with pytest.raises(ConfigError, match="cores must be"):
            AndroidDevice("p", cores=bad)
    with pytest.raises(ConfigError, match="delegate must be"):
        AndroidDevice("p", delegate="tpu")
    with pytest.raises(ConfigError, match="needs serial"):
        AndroidDevice("p", transport="usb")


def test_state_lines_become_device_state() -> None:
    output = ("__tailor_waited=3\n__tailor_state:before:thermal_mc=41200\n__tailor_state:before:cpu7=2841600,"
              "schedutil\n__tailor_state:before:battery=87,312\nINFO: count=5 avg=10\n"
              "__tailor_state:after:thermal_mc=43000\n__tailor_state:after:cpu7=2400000,schedutil\n"
              "__tailor_state:after:battery=87,315\n")
    lines, state, hot_before = _split_state(output)
    assert lines == ["INFO: count=5 avg=10"] and hot_before == 41200
    assert state["cooldown_waited_s"] == "3" and state["thermal_c_before"] == "41.2"
    assert state["thermal_c_after"] == "43.0" and state["freq_mhz_before"] == "2842"
    assert state["governor_after"] == "schedutil" and state["battery_pct_before"] == "87"
    assert state["battery_c_after"] == "31.5"
