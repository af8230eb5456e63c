"""One ADB connection to a phone through adb-shell: keys, shell commands with exit status, pushes, and bounded
reconnects when the phone or adbd goes away.

adb-shell speaks ADB's v1 shell protocol, which returns no exit status, so every command ends with a sentinel line
that carries ``$?``. Only transport failures are retried (a command that ran and failed is reported, never rerun),
and a retried command is one whose effect does not depend on how often it runs (benchmarks, pushes, reads).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tailorkit.core.errors import ConfigError, DeviceError
from tailorkit.core.lazy import optional_import

log = logging.getLogger(__name__)
T = TypeVar("T")

_SENTINEL = "__tailor_rc="
_SENTINEL_RE = re.compile(r"\n?" + _SENTINEL + r"(\d+)\s*$")
TRANSPORTS = ("tcp", "usb")


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tailorkit"


def adb_key_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The private key to sign with: ``explicit``; else the user's adb key (``$ANDROID_USER_HOME/adbkey`` or
    ``~/.android/adbkey``), so a phone that already trusts this computer does not ask again; else tailorkit's own,
    generated once into the user config directory."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"adb key {str(path)!r} does not exist")
        return path
    android_home = os.environ.get("ANDROID_USER_HOME")
    for candidate in ([Path(android_home) / "adbkey"] if android_home else []) + [Path.home() / ".android/adbkey"]:
        if candidate.is_file():
            return candidate
    own = user_config_dir() / "adbkey"
    if not own.is_file():
        keygen = optional_import("adb_shell.auth.keygen", "android", "the android device")
        own.parent.mkdir(parents=True, exist_ok=True)
        tmp = own.with_name(".adbkey.tmp")
        keygen.keygen(str(tmp))
        tmp.chmod(0o600)
        Path(f"{tmp}.pub").replace(f"{own}.pub")
        tmp.replace(own)  # last: a key file without its .pub never exists
        log.info("generated an adb key at %s", own)
    return own


class AdbAuthError(DeviceError):
    """The phone did not accept this computer's key (its prompt was not answered): never retried."""


@dataclass(frozen=True)
class ShellResult:
    output: str
    returncode: int


@dataclass
class AdbCounters:
    """Round trips over the connection, for the overhead benchmark and the logs."""

    connects: int = 0
    reconnects: int = 0
    shells: int = 0
    pushes: int = 0
    bytes_pushed: int = 0


class AdbConnection:
    """A connection to ``target`` (``host:port`` for tcp, the USB serial for usb) that reconnects on demand."""

    def __init__(self, name: str, *, transport: str = "tcp", host: str = "127.0.0.1", port: int = 5555,
                 serial: str | None = None, key: str | os.PathLike[str] | None = None,
                 connect_timeout_s: float = 10.0, auth_timeout_s: float = 30.0, retries: int = 3,
                 backoff_s: float = 0.5) -> None:
        if transport not in TRANSPORTS:
            raise ConfigError(f"device {name!r}: transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        if transport == "usb" and not serial:
            raise ConfigError(f"device {name!r}: transport \"usb\" needs serial = \"…\" (see `adb devices` or "
                              "Settings › About phone)")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"device {name!r}: port must be 1..65535, got {port!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"device {name!r}: retries must be an integer >= 0, got {retries!r}")
        self.name = name
        self.transport = transport
        self.host, self.port, self.serial = host, port, serial
        self.key = key
        self.connect_timeout_s, self.auth_timeout_s = float(connect_timeout_s), float(auth_timeout_s)
        self.retries, self.backoff_s = retries, float(backoff_s)
        self.counters = AdbCounters()
        self._device: Any = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}" if self.transport == "tcp" else f"usb:{self.serial}"

    # ------------------------------------------------------------------------------------------ connection

    def connect(self) -> None:
        if self._device is not None:
            return
        adb = optional_import("adb_shell.adb_device", "android", "the android device")
        exceptions = optional_import("adb_shell.exceptions", "android", "the android device")
        signer_module = optional_import("adb_shell.auth.sign_pythonrsa", "android", "the android device")
        key = adb_key_path(self.key)
        signer = signer_module.PythonRSASigner.FromRSAKeyPath(str(key))
        if self.transport == "tcp":
            device = adb.AdbDevice(_tcp_transport(self.host, self.port, self.connect_timeout_s))
        else:
            optional_import("usb1", "android", "the android device over USB (pip install 'adb-shell[usb]')")
            device = adb.AdbDeviceUsb(serial=self.serial, default_transport_timeout_s=self.connect_timeout_s)
        prompted = []
        try:
            device.connect(rsa_keys=[signer], auth_timeout_s=self.auth_timeout_s,
                           transport_timeout_s=None if self.transport == "tcp" else self.connect_timeout_s,
                           read_timeout_s=self.connect_timeout_s,
                           auth_callback=lambda _dev: prompted.append(True))
        except Exception as exc:  # noqa: BLE001 - adb-shell raises its own types, OSError and struct errors
            _close_quietly(device)
            if prompted and isinstance(exc, (exceptions.AdbTimeoutError, exceptions.TcpTimeoutException)):
                raise AdbAuthError(
                    f"device {self.name!r} ({self.target}) did not accept this computer's adb key: unlock the phone, "
                    f"tap Allow on the \"Allow USB debugging?\" prompt (tick \"Always allow\") and rerun; key: "
                    f"{key}.pub") from None
            raise DeviceError(f"cannot connect to device {self.name!r} ({self.target}): {_describe(exc)}") from None
        self._device = device
        self.counters.connects += 1
        log.debug("connected to %s (%s)", self.name, self.target)

    def close(self) -> None:
        if self._device is not None:
            _close_quietly(self._device)
            self._device = None

    def _with_reconnect(self, what: str, action: Callable[[Any], T]) -> T:
        """Run ``action`` on a live connection; a lost connection is reopened with exponential backoff, up to
        ``retries`` times, before a DeviceError names the device."""
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning("device %s: %s lost the connection (%s); reconnecting in %.1f s (%d/%d)", self.name,
                            what, last, delay, attempt, self.retries)
                time.sleep(delay)
            try:
                if self._device is None:
                    self.connect()
                    if attempt:
                        self.counters.reconnects += 1
                return action(self._device)
            except AdbAuthError:
                raise
            except DeviceError as exc:  # could not connect (yet): adbd restarting, Wi-Fi coming back
                last = str(exc)
            except _CommandFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - see _is_transport_error
                if not _is_transport_error(exc):
                    raise
                last = _describe(exc)
                self.close()
        raise DeviceError(f"device {self.name!r} ({self.target}) is gone: {what} failed after {self.retries} "
                          f"reconnect attempts ({last}); is it plugged in and is adbd running? Measurements already "
                          "stored are kept; rerun to resume")

    # -------------------------------------------------------------------------------------------- commands

    def shell(self, script: str, timeout_s: float = 60.0) -> ShellResult:
        """Run ``script`` with ``sh`` on the device; its output and exit status. A timeout is a DeviceError."""
        exceptions = optional_import("adb_shell.exceptions", "android", "the android device")
        wrapped = f"{script}\nprintf '\\n{_SENTINEL}%s\\n' $?"

        def run(device: Any) -> ShellResult:
            try:
                out = device.shell(wrapped, timeout_s=timeout_s, read_timeout_s=timeout_s,
                                   transport_timeout_s=timeout_s, decode=False)
            except exceptions.AdbTimeoutError as exc:
                if "did not complete" in str(exc):
                    self.close()  # the stream may still be open on the device: start clean next time
                    raise _CommandFailed(f"device {self.name!r}: command timed out after {timeout_s:g} s") from None
                raise
            self.counters.shells += 1
            text = out.decode("utf-8", errors="replace") if isinstance(out, bytes) else str(out)
            match = _SENTINEL_RE.search(text)
            if match is None:
                # the stream closed before the shell finished: adbd died or the connection dropped mid-command
                raise ConnectionResetError("the shell ended without its exit status")
            return ShellResult(text[:match.start()], int(match.group(1)))

        try:
            return self._with_reconnect("a shell command", run)
        except _CommandFailed as exc:
            raise DeviceError(str(exc)) from None

    def push(self, local: str | os.PathLike[str], remote: str, mode: int = 0o644, timeout_s: float = 120.0) -> None:
        local = Path(local)
        size = local.stat().st_size

        def run(device: Any) -> None:
            try:
                device.push(str(local), remote, st_mode=0o100000 | mode, transport_timeout_s=timeout_s,
                            read_timeout_s=timeout_s)
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ == "PushFailedError":
                    raise _CommandFailed(f"device {self.name!r}: pushing {local.name} to {remote} failed: "
                                         f"{_describe(exc)}") from None
                raise
            self.counters.pushes += 1
            self.counters.bytes_pushed += size

        try:
            self._with_reconnect(f"pushing {local.name}", run)
        except _CommandFailed as exc:
            raise DeviceError(str(exc)) from None


def _tcp_transport(host: str, port: int, connect_timeout_s: float) -> Any:
    """adb-shell's TCP transport with three fixes. Its sockets become non-blocking when given a timeout, and its
    writes ignore how much ``send`` took, which can cut a message short: here the socket stays blocking (each read
    and write is still bounded by ``select``) and a write sends everything. A closed connection reads as endless
    empty data, spun on until the read timeout: here it is a ConnectionResetError at once. And it writes a header
    and its payload separately, so Nagle's algorithm waits for the delayed ACK of the first (~40 ms per message on
    Linux): TCP_NODELAY."""
    tcp = optional_import("adb_shell.transport.tcp_transport", "android", "the android device")

    class _Transport(tcp.TcpTransport):  # type: ignore[misc, name-defined]
        def connect(self, transport_timeout_s: float | None) -> None:
            sock = socket.create_connection((self._host, self._port), timeout=connect_timeout_s)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection = sock

        def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError(f"{self._host}:{self._port} closed the connection")
            return data

        def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
            view = memoryview(data)
            sent = 0
            while sent < len(view):
                sent += super().bulk_write(view[sent:], transport_timeout_s)
            return sent

    return _Transport(host, port)


class _CommandFailed(Exception):
    """A command reached the device and failed there: never retried."""


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, EOFError)):
        return True
    # adb-shell's timeouts and protocol errors on a dying socket, and struct errors on a short read
    return type(exc).__name__ in ("TcpTimeoutException", "AdbTimeoutError", "InvalidResponseError",
                                  "InvalidCommandError", "InvalidChecksumError", "AdbConnectionError",
                                  "UsbReadFailedError", "UsbWriteFailedError", "error")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(device: Any) -> None:
    try:
        device.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail in any way; it is gone either way
        log.debug("closing the adb connection failed", exc_info=True)
