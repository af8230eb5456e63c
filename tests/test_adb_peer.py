"""The loopback ADB peer against adb-shell, a raw protocol client, and Debian's real ``adb`` client."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("adb_shell", reason="adb-shell is part of the android extra")

from adb_shell.adb_device import AdbDeviceTcp  # noqa: E402
from adb_shell.auth.keygen import keygen  # noqa: E402
from adb_shell.auth.sign_pythonrsa import PythonRSASigner  # noqa: E402
from adb_shell.exceptions import (  # noqa: E402
    AdbCommandFailureException,
    AdbConnectionError,
    AdbTimeoutError,
    DeviceAuthError,
    PushFailedError,
    TcpTimeoutException,
)

from tailorkit.testing.adb_peer import (  # noqa: E402
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_WRTE,
    LoopbackAdbPeer,
    PeerStats,
    parse_android_pubkey,
)

# What a client sees when the peer drops it: a reset, an EOF it reads until its timeout, or a closed socket.
DROPPED = (OSError, AdbTimeoutError, TcpTimeoutException, AdbConnectionError)


Connect = Callable[..., AdbDeviceTcp]
Keys = list[tuple[PythonRSASigner, str]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """adb-shell connections that are closed at teardown, failed ones included."""
    opened: list[AdbDeviceTcp] = []

    def open_(peer: LoopbackAdbPeer, **kwargs: object) -> AdbDeviceTcp:
        opened.append(AdbDeviceTcp(peer.host, peer.port))
        opened[-1].connect(**kwargs)
        return opened[-1]

    yield open_
    for dev in opened:
        dev.close()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[LoopbackAdbPeer]:
    with LoopbackAdbPeer(tmp_path / "dev") as running:
        yield running


@pytest.fixture
def device(peer: LoopbackAdbPeer, connect: Connect) -> AdbDeviceTcp:
    return connect(peer)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Two adb-shell key pairs: (signer, text of adbkey.pub)."""
    pairs = []
    for name in ("first", "second"):
        path = tmp_path_factory.mktemp("keys") / f"{name}_adbkey"
        keygen(str(path))
        pairs.append((PythonRSASigner.FromRSAKeyPath(str(path)), Path(f"{path}.pub").read_text()))
    return pairs


class RawClient:
    """Just enough of the host side to send what adb-shell would not (bad checksums, refused services)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"", checksum: int | None = None) -> None:
        check = sum(payload) & 0xFFFFFFFF if checksum is None else checksum
        self.sock.sendall(struct.pack("<6I", command, arg0, arg1, len(payload), check, command ^ 0xFFFFFFFF) + payload)

    def recv(self) -> tuple[int, int, int, bytes]:
        command, arg0, arg1, length, _, _ = struct.unpack("<6I", self._exactly(24))
        return command, arg0, arg1, self._exactly(length)

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("peer closed the connection")
            data += chunk
        return data

    def handshake(self, version: int = 0x01000000) -> bytes:
        self.send(A_CNXN, version, 4096, b"host::\0")
        command, _, maxdata, banner = self.recv()
        assert (command, maxdata) == (A_CNXN, 4096)
        return banner

    def open(self, local_id: int, service: bytes) -> int:
        self.send(A_OPEN, local_id, 0, service + b"\0")
        command, remote_id, arg1, _ = self.recv()
        assert (command, arg1) == (A_OKAY, local_id)
        return remote_id

    def write(self, local_id: int, remote_id: int, data: bytes) -> None:
        self.send(A_WRTE, local_id, remote_id, data)
        assert self.recv()[:3] == (A_OKAY, remote_id, local_id)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(peer: LoopbackAdbPeer) -> Iterator[RawClient]:
    client = RawClient(peer.port)
    yield client
    client.close()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


# -- adb-shell ---------------------------------------------------------------------------------------------


def test_shell_output_and_exit_status_through_a_sentinel(device: AdbDeviceTcp) -> None:
    assert device.shell("echo hi; echo __rc=$?") == "hi\n__rc=0\n"
    assert device.shell("sh -c 'exit 3'; echo __rc=$?") == "__rc=3\n"
    assert device.shell("echo out; echo err >&2") == "out\nerr\n"  # v1 shell: one merged stream
    assert device.exec_out("echo exec") == "exec\n"


def test_output_larger_than_maxdata_arrives_complete(peer: LoopbackAdbPeer, device: AdbDeviceTcp) -> None:
    out = device.shell("head -c 300000 /dev/zero | tr '\\0' a")
    assert out == "a" * 300_000
    assert peer.stats.messages_to_client >= 3  # 256 KiB maxdata: at least two WRTEs and a CLSE


def test_push_pull_round_trip(peer: LoopbackAdbPeer, device: AdbDeviceTcp, tmp_path: Path) -> None:
    blob = os.urandom(700_000)
    (tmp_path / "blob").write_bytes(blob)
    device.push(str(tmp_path / "blob"), "/data/local/tmp/models/blob.bin", st_mode=stat.S_IFREG | 0o755)
    landed = peer.root / "data/local/tmp/models/blob.bin"
    assert landed.read_bytes() == blob
    assert stat.S_IMODE(landed.stat().st_mode) == 0o755
    assert [p.name for p in landed.parent.iterdir()] == ["blob.bin"]  # no temporary file left behind
    device.pull("/data/local/tmp/models/blob.bin", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == blob
    mode, size, _ = device.stat("/data/local/tmp/models/blob.bin")
    assert (stat.S_IMODE(mode), size) == (0o755, 700_000)
    assert [bytes(f.filename) for f in device.list("/data/local/tmp/models")] == [b"blob.bin"]
    assert device.stat("/data/local/tmp/missing") == (0, 0, 0)


def test_pull_of_a_missing_file_fails(device: AdbDeviceTcp, tmp_path: Path) -> None:
    with pytest.raises(AdbCommandFailureException, match="no such file"):
        device.pull("/data/local/tmp/missing", str(tmp_path / "x"))


@pytest.mark.parametrize("template", ["/data/local/tmp/../../../../{}", "/../../{}", "../../../../../{}"])
def test_push_outside_the_sandbox_is_refused(device: AdbDeviceTcp, tmp_path: Path, template: str) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    (tmp_path / "blob").write_bytes(b"x" * 1000)
    with pytest.raises(PushFailedError, match="permission denied"):
        device.push(str(tmp_path / "blob"), template.format(name))
    assert not (tmp_path / name).exists()
    assert not (tmp_path.parent / name).exists()


def test_push_through_a_symlink_out_of_the_sandbox_is_refused(peer: LoopbackAdbPeer, device: AdbDeviceTcp,
                                                              tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (peer.root / "data/local/tmp/link").symlink_to(outside)
    (tmp_path / "blob").write_bytes(b"secret")
    with pytest.raises(PushFailedError, match="permission denied"):
        device.push(str(tmp_path / "blob"), "/data/local/tmp/link/blob")
    assert list(outside.iterdir()) == []


def test_getprop_lists_all_and_answers_one(tmp_path: Path, connect: Connect) -> None:
    props = {"ro.product.model": "Pixel 8", "ro.quote": "it's $HOME `x`"}
    with LoopbackAdbPeer(tmp_path / "dev", properties=props) as peer:
        dev = connect(peer)
        listing = dev.shell("getprop")
        assert "[ro.product.model]: [Pixel 8]\n" in listing
        assert f"[ro.serialno]: [loopback-{peer.port}]\n" in listing
        assert "[ro.build.version.sdk]: [34]\n" in listing
        assert dev.shell("getprop ro.quote") == "it's $HOME `x`\n"
        assert dev.shell("getprop ro.build.version.release") == "14\n"
        assert dev.shell("getprop no.such.prop") == "\n"


def test_shell_paths_under_device_prefixes_map_into_the_root(peer: LoopbackAdbPeer, device: AdbDeviceTcp) -> None:
    assert device.shell("echo x > /data/local/tmp/f; cat '/data/local/tmp/f'") == "x\n"
    assert (peer.root / "data/local/tmp/f").read_text() == "x\n"
    assert device.shell("mkdir -p /sdcard/d && cd /sdcard/d && pwd") == f"{peer.root}/sdcard/d\n"
    assert device.shell("pwd") == f"{peer.root}/data/local/tmp\n"


def test_streams_on_one_connection_run_concurrently(peer: LoopbackAdbPeer, raw: RawClient) -> None:
    raw.handshake()
    # The first command can only finish once the second has run, so a serial peer would never answer.
    first = raw.open(1, b"shell:while [ ! -e /data/local/tmp/flag ]; do sleep 0.01; done; echo first")
    second = raw.open(2, b"shell:touch /data/local/tmp/flag; echo second")
    output: dict[int, bytes] = {1: b"", 2: b""}
    closed: set[int] = set()
    while closed != {1, 2}:
        command, remote_id, local_id, data = raw.recv()
        assert remote_id == {1: first, 2: second}[local_id]
        if command == A_WRTE:
            output[local_id] += data
            raw.send(A_OKAY, local_id, remote_id)
        elif command == A_CLSE:
            closed.add(local_id)
    assert output == {1: b"first\n", 2: b"second\n"}


def test_sync_requests_split_across_writes_are_reassembled(peer: LoopbackAdbPeer, raw: RawClient) -> None:
    raw.handshake()
    remote = raw.open(1, b"sync:")
    spec = b"/data/local/tmp/split.txt,33188"
    request = (b"SEND" + struct.pack("<I", len(spec)) + spec + b"DATA" + struct.pack("<I", 5) + b"hello"
               + b"DONE" + struct.pack("<I", 1_600_000_000))
    for piece in (request[:3], request[3:11], request[11:40], request[40:]):
        raw.write(1, remote, piece)
    command, _, _, reply = raw.recv()
    assert (command, reply) == (A_WRTE, b"OKAY\0\0\0\0")
    landed = peer.root / "data/local/tmp/split.txt"
    assert landed.read_bytes() == b"hello"
    assert (stat.S_IMODE(landed.stat().st_mode), int(landed.stat().st_mtime)) == (0o644, 1_600_000_000)


def test_refused_services_are_closed_at_once(peer: LoopbackAdbPeer, raw: RawClient) -> None:
    assert b"features=cmd" in raw.handshake()
    for local_id, service in enumerate((b"reboot:", b"root:", b"tcpip:5555", b"shell:", b"shell,v2,raw:ls"), 1):
        raw.send(A_OPEN, local_id, 0, service + b"\0")
        assert raw.recv() == (A_CLSE, 0, local_id, b"")
    assert peer.stats.services == {"refused": 5}


def test_a_bad_checksum_closes_the_connection(peer: LoopbackAdbPeer, raw: RawClient) -> None:
    raw.send(A_CNXN, 0x01000000, 4096, b"host::\0", checksum=12345)
    with pytest.raises((EOFError, ConnectionResetError)):
        raw.recv()
    assert peer.stats.handshakes == 0


def test_a_zero_checksum_is_accepted_from_newer_clients(peer: LoopbackAdbPeer, raw: RawClient) -> None:
    raw.send(A_CNXN, 0x01000001, 4096, b"host::\0", checksum=0)
    command, version, _, banner = raw.recv()
    assert (command, version) == (A_CNXN, 0x01000000)
    assert banner.startswith(b"device::ro.product.name=loopback;")


def test_client_close_and_stop_terminate_running_commands(tmp_path: Path) -> None:
    peer = LoopbackAdbPeer(tmp_path / "dev").start()
    client = RawClient(peer.port)
    client.handshake()
    pids = []
    for local_id in (1, 2):
        remote = client.open(local_id, b"shell:echo $$; exec sleep 60")
        command, _, _, data = client.recv()
        assert command == A_WRTE
        client.send(A_OKAY, local_id, remote)
        pids.append(int(data))
    client.send(A_CLSE, 1, 1)
    assert client.recv() == (A_CLSE, 1, 1, b"")
    peer.stop()
    assert not any(alive(pid) for pid in pids)
    client.close()


def test_stats_count_services_commands_transfers_and_bytes(peer: LoopbackAdbPeer, device: AdbDeviceTcp,
                                                           tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"z" * 5000)
    device.shell("echo a")
    device.exec_out("echo /data/local/tmp")
    device.push(str(tmp_path / "f"), "/data/local/tmp/f")
    device.pull("/data/local/tmp/f", str(tmp_path / "g"))
    stats = peer.stats
    assert (stats.connections, stats.handshakes, stats.auth_prompts) == (1, 1, 0)
    assert stats.services == {"shell": 1, "exec": 1, "sync": 2}
    assert stats.shell_commands == ("echo a", "echo /data/local/tmp")  # as received, before mapping
    assert stats.pushes == (("/data/local/tmp/f", 5000),)
    assert stats.pulls == (("/data/local/tmp/f", 5000),)
    assert stats.bytes_from_client > 5000 + 24 * stats.messages_from_client
    assert stats.bytes_to_client > 5000 + 24 * stats.messages_to_client
    peer.reset_stats()
    assert peer.stats == PeerStats()


def test_drop_after_shells_disconnects_then_reconnects(tmp_path: Path, connect: Connect) -> None:
    with LoopbackAdbPeer(tmp_path / "dev", drop_after_shells=1) as peer:
        dev = connect(peer)
        assert dev.shell("echo one") == "one\n"
        with pytest.raises(DROPPED):
            dev.shell("echo two", read_timeout_s=2)
        again = connect(peer)
        assert again.shell("echo three") == "three\n"  # one-shot: no further drops
        peer.drop_after_shells = 2
        assert again.shell("echo four") == "four\n"
        assert again.shell("echo five") == "five\n"
        with pytest.raises(DROPPED):
            again.shell("echo six", read_timeout_s=2)
        assert peer.stats.connections == 2


def test_refuse_after_drop_until_restore(tmp_path: Path, connect: Connect) -> None:
    with LoopbackAdbPeer(tmp_path / "dev", drop_after_shells=1, refuse_after_drop=True) as peer:
        dev = connect(peer)
        dev.shell("echo one")
        with pytest.raises(DROPPED):
            dev.shell("echo two", read_timeout_s=2)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((peer.host, peer.port), timeout=5).close()
        peer.restore()
        assert connect(peer).shell("echo back") == "back\n"


def test_disconnect_all_and_restart_on_the_same_port(tmp_path: Path, connect: Connect) -> None:
    with LoopbackAdbPeer(tmp_path / "dev") as peer:
        dev = connect(peer)
        port = peer.port
        peer.disconnect_all()
        with pytest.raises(DROPPED):
            dev.shell("echo gone", read_timeout_s=2)
        peer.stop()
        peer.start()
        assert peer.port == port
        assert connect(peer).shell("echo again") == "again\n"


# -- authentication -----------------------------------------------------------------------------------------


def test_authorized_key_connects_without_a_prompt(tmp_path: Path, keys: Keys, connect: Connect) -> None:
    (signer, public), _ = keys
    with LoopbackAdbPeer(tmp_path / "dev", auth="keys", authorized_keys=[public]) as peer:
        assert connect(peer, rsa_keys=[signer], auth_timeout_s=1.0).shell("echo ok") == "ok\n"
        assert (peer.stats.auth_prompts, peer.stats.handshakes) == (0, 1)


def test_new_key_is_accepted_once_then_remembered(tmp_path: Path, keys: Keys, connect: Connect) -> None:
    (_, known), (signer, _) = keys
    with LoopbackAdbPeer(tmp_path / "dev", auth="keys", authorized_keys=[known], accept_new_keys=True) as peer:
        assert connect(peer, rsa_keys=[signer], auth_timeout_s=1.0).shell("echo ok") == "ok\n"
        assert peer.stats.auth_prompts == 1
        connect(peer, rsa_keys=[signer], auth_timeout_s=1.0)
        assert (peer.stats.auth_prompts, peer.stats.handshakes) == (1, 2)


def test_new_key_not_accepted_times_out(tmp_path: Path, keys: Keys, connect: Connect) -> None:
    (signer, _), _ = keys
    with LoopbackAdbPeer(tmp_path / "dev", auth="keys") as peer:
        with pytest.raises(TcpTimeoutException):
            connect(peer, rsa_keys=[signer], auth_timeout_s=1.0)
        with pytest.raises(DeviceAuthError):
            connect(peer)
        assert (peer.stats.auth_prompts, peer.stats.handshakes) == (1, 0)


def test_parse_android_pubkey_matches_the_private_key(keys: Keys) -> None:
    (signer, public), _ = keys
    numbers = parse_android_pubkey(public).public_numbers()
    assert (numbers.n, numbers.e) == (signer.priv_key.n, signer.priv_key.e)
    with pytest.raises(ValueError):
        parse_android_pubkey("AAAA user@host")


# -- sandbox and construction -------------------------------------------------------------------------------


def test_device_path_maps_into_the_root_and_refuses_escapes(tmp_path: Path) -> None:
    peer = LoopbackAdbPeer(tmp_path / "dev")
    root = peer.root
    assert peer.device_path("/data/local/tmp/x") == root / "data/local/tmp/x"
    assert peer.device_path("models/m.tflite") == root / "data/local/tmp/models/m.tflite"
    assert peer.device_path("/sdcard/a/../b") == root / "sdcard/b"
    assert peer.device_path("/etc/hosts") == root / "etc/hosts"
    for escape in ("/data/local/tmp/../../../../etc/passwd", "/../x", "../../../../x", "/data/../../x"):
        with pytest.raises(PermissionError):
            peer.device_path(escape)
    (root / "data/local/tmp").mkdir(parents=True)
    (root / "sdcard").mkdir()
    (root / "data/local/tmp/out").symlink_to(tmp_path)
    (root / "data/local/tmp/in").symlink_to(root / "sdcard")
    for escape in ("/data/local/tmp/out", "/data/local/tmp/out/f", "out/../out/f"):
        with pytest.raises(PermissionError):
            peer.device_path(escape)
    assert peer.device_path("/data/local/tmp/in/f") == root / "sdcard/f"


def test_map_command_rewrites_only_path_starts(tmp_path: Path) -> None:
    peer = LoopbackAdbPeer(tmp_path / "dev")
    r = str(peer.root)
    assert peer.map_command("cat /data/local/tmp/a '/sdcard/b' x=/data/local/tmp:/sdcard") == \
        f"cat {r}/data/local/tmp/a '{r}/sdcard/b' x={r}/data/local/tmp:{r}/sdcard"
    unchanged = "ls /data/local/tmpx /x/data/local/tmp /sdcardy /proc/cpuinfo"
    assert peer.map_command(unchanged) == unchanged


def test_construction_refuses_unsafe_roots_and_unknown_auth(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quoting"):
        LoopbackAdbPeer(tmp_path / "my device")
    with pytest.raises(ValueError, match="auth"):
        LoopbackAdbPeer(tmp_path / "dev", auth="password")


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tailorkit.testing.adb_peer", "--root", str(tmp_path / "dev"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        match = re.fullmatch(r"serving adb on 127\.0\.0\.1:(\d+) \(root (.+)\)\n", proc.stdout.readline())
        assert match is not None and Path(match[2]) == (tmp_path / "dev").resolve()
        dev = AdbDeviceTcp("127.0.0.1", int(match[1]))
        dev.connect()
        assert dev.shell("echo cli") == "cli\n"
        dev.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


# -- Debian's adb client ------------------------------------------------------------------------------------


@pytest.fixture
def adb(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """``adb`` with a private server port and HOME, so tests never touch the user's server or keys."""
    exe = shutil.which("adb")
    if exe is None:
        pytest.skip("the real adb client is not installed (apt-get install adb; .ci/run installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server_port = probe.getsockname()[1]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDROID_", "ADB_"))} | {"HOME": str(home)}

    def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "-P", str(server_port), *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    run("start-server")
    yield run
    run("kill-server")


def test_real_adb_shell_push_pull(tmp_path: Path, adb: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    blob = os.urandom(700_000)
    (tmp_path / "blob").write_bytes(blob)
    with LoopbackAdbPeer(tmp_path / "dev") as peer:
        assert "connected" in adb("connect", peer.serial).stdout
        assert adb("-s", peer.serial, "shell", "echo hi").stdout == "hi\n"
        assert adb("-s", peer.serial, "shell", "getprop ro.product.model").stdout == "tailorkit loopback\n"
        assert adb("-s", peer.serial, "push", str(tmp_path / "blob"), "/data/local/tmp/blob").returncode == 0
        assert (peer.root / "data/local/tmp/blob").read_bytes() == blob
        assert adb("-s", peer.serial, "pull", "/data/local/tmp/blob", str(tmp_path / "back")).returncode == 0
        assert (tmp_path / "back").read_bytes() == blob
        refused = adb("-s", peer.serial, "push", str(tmp_path / "blob"), "/data/local/tmp/../../../../x")
        assert refused.returncode != 0 and "permission denied" in refused.stdout + refused.stderr
        adb("disconnect", peer.serial)


def test_real_adb_with_key_authorization(tmp_path: Path, adb: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    with LoopbackAdbPeer(tmp_path / "dev", auth="keys", accept_new_keys=True) as peer:
        adb("connect", peer.serial)  # adb 29 prints "failed to authenticate" while the phone would show the dialog
        adb("-s", peer.serial, "wait-for-device")
        assert adb("-s", peer.serial, "shell", "echo hi").stdout == "hi\n"
        assert peer.stats.auth_prompts == 1
        parse_android_pubkey((tmp_path / "home/.android/adbkey.pub").read_text())  # the key adb generated
        adb("disconnect", peer.serial)
