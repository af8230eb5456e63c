"""A loopback ADB device: the device side of the ADB protocol over TCP, for tests and benchmarks.

``LoopbackAdbPeer`` listens like ``adbd`` after ``adb tcpip`` and speaks the real transport (CNXN, AUTH, OPEN,
OKAY, WRTE, CLSE with flow control) and the version-1 services that clients fall back to when a device
advertises no ``shell_v2``/``stat_v2``: ``shell:``/``exec:`` (stdout and stderr merged, no exit status) and
``sync:`` (STAT, LIST, SEND, RECV, QUIT). adb-shell and Debian's ``adb`` client talk to it unchanged, so the
Android adapter runs end to end without a phone; fault injection (``drop_after_shells``, ``disconnect_all``)
stands in for a phone being unplugged.

It is a test peer on loopback, not a security boundary. File transfer is confined to ``root`` (device ``/p`` is
``root/p``; ``..`` and symlink escapes are refused). Shell commands run as the host user with only the device
prefixes ``/data/local/tmp`` and ``/sdcard`` rewritten into ``root``; other absolute paths (``/proc``, ``/sys``)
read the host's, which is what the device adapter wants to read (cpu frequencies, thermal zones).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import logging
import os
import platform
import posixpath
import re
import shlex
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

log = logging.getLogger(__name__)

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE = 0x4E584E43, 0x48545541, 0x4E45504F, 0x59414B4F, 0x45534C43, 0x45545257
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
VERSION = 0x01000000  # the oldest version: clients keep sending checksums, which we verify
VERSION_SKIP_CHECKSUM = 0x01000001
MAX_PAYLOAD = 256 * 1024
SYNC_DATA_MAX = 64 * 1024
_HEADER = struct.Struct("<6I")
_MAX_INCOMING = 1024 * 1024  # what any client may send before learning our maxdata
_DEVICE_TMP = "/data/local/tmp"
# A device prefix starts a path after the start, whitespace, a quote, '=' or ':', and must end at a separator.
_PREFIX_RE = re.compile(r"(?:^|(?<=[\s'\"=:]))(/data/local/tmp|/sdcard)(?=$|[/\s'\";:&|()<>`])")
# Clients answer our CLSE with theirs (adb-shell and adb 29 do); a shell counts as completed at that answer, or
# after this long for a client that never sends it.
_COMPLETION_GRACE_S = 0.5
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _ProtocolError(Exception):
    pass


@dataclass(frozen=True)
class PeerStats:
    """A snapshot of what the peer has seen since start (or the last ``reset_stats()``)."""

    connections: int = 0
    handshakes: int = 0
    auth_prompts: int = 0
    services: Mapping[str, int] = field(default_factory=dict)
    shell_commands: tuple[str, ...] = ()
    pushes: tuple[tuple[str, int], ...] = ()
    pulls: tuple[tuple[str, int], ...] = ()
    bytes_from_client: int = 0
    bytes_to_client: int = 0
    messages_from_client: int = 0
    messages_to_client: int = 0


@dataclass
class _Tally:
    connections: int = 0
    handshakes: int = 0
    auth_prompts: int = 0
    services: Counter[str] = field(default_factory=Counter)
    shell_commands: list[str] = field(default_factory=list)
    pushes: list[tuple[str, int]] = field(default_factory=list)
    pulls: list[tuple[str, int]] = field(default_factory=list)
    bytes_from_client: int = 0
    bytes_to_client: int = 0
    messages_from_client: int = 0
    messages_to_client: int = 0

    def snapshot(self) -> PeerStats:
        return PeerStats(self.connections, self.handshakes, self.auth_prompts,
                         MappingProxyType(dict(self.services)), tuple(self.shell_commands), tuple(self.pushes),
                         tuple(self.pulls), self.bytes_from_client, self.bytes_to_client,
                         self.messages_from_client, self.messages_to_client)


def parse_android_pubkey(text: str | bytes) -> rsa.RSAPublicKey:
    """Android's ``adbkey.pub`` text (base64 of ``struct RSAPublicKey`` + optional comment) → an RSA key.

    The struct is little-endian: word count, n0inv, n as words, rr as words, exponent."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    fields = text.strip("\0 \t\r\n").split()
    if not fields:
        raise ValueError("empty ADB public key")
    raw = base64.b64decode(fields[0], validate=True)
    words = struct.unpack_from("<I", raw)[0] if len(raw) >= 4 else 0
    if words == 0 or len(raw) != 12 + 8 * words:
        raise ValueError(f"not an Android RSA public key ({len(raw)} bytes)")
    n = int.from_bytes(raw[8:8 + 4 * words], "little")
    exponent = struct.unpack_from("<I", raw, 8 + 8 * words)[0]
    return rsa.RSAPublicNumbers(exponent, n).public_key()


@dataclass(eq=False)
class _Stream:
    local_id: int
    remote_id: int
    kind: str
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    inbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    closed: bool = False  # we sent CLSE
    completed: bool = False  # a shell that ran to its end
    generation: int = 0  # of drop_after_shells when opened: only streams opened after setting it count
    grace: asyncio.TimerHandle | None = None


class _Upload:
    """One SEND: written to a temporary file beside the target and renamed on DONE, so a failed push leaves
    no partial file. Errors are kept until DONE because clients only read the reply then."""

    def __init__(self, peer: LoopbackAdbPeer, spec: str) -> None:
        path, comma, mode = spec.rpartition(",")
        self.path, self.mode = (path, 0) if comma else (spec, 0o100644)
        self.size, self.error, self.file, self.tmp = 0, "", None, ""
        try:
            self.mode = int(mode) if comma else self.mode
            if stat.S_ISLNK(self.mode):
                raise PermissionError(f"permission denied: {self.path}: symlinks are not supported")
            self.target = peer.device_path(self.path)
            if self.target.is_dir() or self.path.endswith("/"):
                raise IsADirectoryError(f"{self.path}: is a directory")
            self.target.parent.mkdir(parents=True, exist_ok=True)  # adbd creates missing parents too
            fd, self.tmp = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".part")
            self.file = os.fdopen(fd, "wb")
        except (OSError, ValueError) as exc:
            self.error = _describe(self.path, exc)

    def write(self, data: bytes) -> None:
        if self.file is not None and not self.error:
            try:
                self.file.write(data)
                self.size += len(data)
            except OSError as exc:
                self.error = _describe(self.path, exc)

    def finish(self, mtime: int) -> str:
        try:
            if self.file is not None:
                self.file.close()
            if not self.error:
                os.chmod(self.tmp, self.mode & 0o777)
                os.utime(self.tmp, (mtime, mtime))
                os.replace(self.tmp, self.target)
                self.tmp = ""
        except OSError as exc:
            self.error = _describe(self.path, exc)
        self.discard()
        return self.error

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tmp:
            Path(self.tmp).unlink(missing_ok=True)
            self.tmp = ""


def _describe(path: str, exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{path}: {exc.strerror.lower()}"
    return str(exc)


class _Connection:
    """One TCP connection: the handshake, then a message loop that never waits for acks itself (stream tasks
    do), so OKAYs for our WRTEs keep flowing while any stream is busy."""

    def __init__(self, peer: LoopbackAdbPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer, self.reader, self.writer = peer, reader, writer
        self.version, self.maxdata, self.online, self.token = 0, MAX_PAYLOAD, False, b""
        self.streams: dict[int, _Stream] = {}
        self.ids = itertools.count(1)

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None:
        if self.writer.is_closing():
            return
        header = _HEADER.pack(command, arg0, arg1, len(payload), sum(payload) & 0xFFFFFFFF, command ^ 0xFFFFFFFF)
        self.writer.write(header + payload)
        self.peer._count(sent=len(header) + len(payload))

    async def run(self) -> None:
        sock = self.writer.get_extra_info("socket")
        while True:
            header = await self.reader.readexactly(_HEADER.size)
            if _QUICKACK is not None:
                # adb-shell writes header and payload in two sends; with Nagle on its side and delayed ACKs on
                # ours, every payload would wait ~40 ms for our ACK of the header.
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            command, arg0, arg1, length, check, magic = _HEADER.unpack(header)
            if magic != command ^ 0xFFFFFFFF or length > _MAX_INCOMING:
                raise _ProtocolError(f"bad header {command:#x} magic {magic:#x} length {length}")
            payload = await self.reader.readexactly(length) if length else b""
            version = arg0 if command == A_CNXN else self.version
            if check != sum(payload) & 0xFFFFFFFF and not (check == 0 and version >= VERSION_SKIP_CHECKSUM):
                raise _ProtocolError(f"bad checksum on {command:#x}")
            self.peer._count(received=_HEADER.size + length)
            self.dispatch(command, arg0, arg1, payload)

    def dispatch(self, command: int, arg0: int, arg1: int, payload: bytes) -> None:
        if command == A_CNXN:
            self.version, self.maxdata = arg0, min(arg1, MAX_PAYLOAD) or MAX_PAYLOAD
            if self.peer.auth == "none" or self.online:
                self.accept()
            else:
                self.challenge()
        elif command == A_AUTH:
            self.authenticate(arg0, payload)
        elif not self.online:
            log.debug("ignoring %#x before the handshake", command)  # as adbd does
        elif command == A_OPEN:
            self.open(arg0, payload)
        elif command == A_OKAY:
            if stream := self.streams.get(arg1):
                stream.acked.set()
        elif command == A_WRTE:
            if stream := self.streams.get(arg1):
                # OKAY before any reply: adb-shell drops a WRTE that arrives while it waits for this OKAY.
                self.send(A_OKAY, stream.local_id, stream.remote_id)
                if stream.kind == "sync":
                    stream.inbox.put_nowait(payload)
        elif command == A_CLSE:
            self.client_closed(arg1)
        else:
            raise _ProtocolError(f"unknown command {command:#x}")

    def accept(self) -> None:
        self.online, self.token = True, b""
        props = self.peer.properties
        banner = "device::" + "".join(f"{key}={props[key]};" for key in
                                      ("ro.product.name", "ro.product.model", "ro.product.device")) + "features=cmd"
        # counted before the reply: a client may read the stats as soon as its connect returns
        self.peer._count(handshakes=1)
        self.send(A_CNXN, VERSION, self.maxdata, banner.encode())

    def challenge(self) -> None:
        self.token = os.urandom(20)
        self.send(A_AUTH, AUTH_TOKEN, 0, self.token)

    def authenticate(self, kind: int, payload: bytes) -> None:
        if not self.token:
            return
        if kind == AUTH_SIGNATURE:
            if self.peer._verify(self.token, payload):
                self.accept()
            else:
                self.challenge()  # a fresh token per try, as adbd does
        elif kind == AUTH_RSAPUBLICKEY:
            self.peer._count(auth_prompts=1)  # the "Allow USB debugging?" dialog
            if not self.peer.accept_new_keys:
                log.info("new key not accepted; the client will time out")
                return
            try:
                self.peer._authorize(parse_android_pubkey(payload))
            except ValueError as exc:
                log.warning("unusable public key from client: %s", exc)
                return
            self.accept()

    def open(self, remote_id: int, payload: bytes) -> None:
        service = payload.rstrip(b"\0").decode("utf-8", "replace")
        kind, _, command = service.partition(":")
        if remote_id == 0 or not ((kind in ("shell", "exec") and command.strip()) or service == "sync:"):
            self.peer._count(service="refused")
            self.send(A_CLSE, 0, remote_id)  # how adbd refuses a service
            return
        stream = _Stream(next(self.ids), remote_id, kind, generation=self.peer._drop_generation)
        self.streams[stream.local_id] = stream
        self.peer._count(service=kind, command=command if kind != "sync" else None)
        self.send(A_OKAY, stream.local_id, remote_id)
        body = self.sync(stream) if kind == "sync" else self.shell(stream, command)
        stream.task = asyncio.get_running_loop().create_task(self.guard(stream, body))

    async def guard(self, stream: _Stream, body: Coroutine[Any, Any, None]) -> None:
        try:
            await body
        except OSError as exc:  # the connection went away, or the command could not start
            log.info("stream %d (%s) ended: %s", stream.local_id, stream.kind, exc)
        except Exception:
            log.exception("stream %d (%s) failed", stream.local_id, stream.kind)
        finally:
            self.close_stream(stream)

    def close_stream(self, stream: _Stream) -> None:
        if not stream.closed:
            stream.closed = True
            self.send(A_CLSE, stream.local_id, stream.remote_id)
            if stream.completed:
                stream.grace = asyncio.get_running_loop().call_later(_COMPLETION_GRACE_S, self.finish, stream)

    def client_closed(self, local_id: int) -> None:
        stream = self.streams.get(local_id)
        if stream is None:
            return
        if stream.closed:
            self.finish(stream)  # the client's answer to our CLSE
            return
        self.streams.pop(local_id)
        stream.closed = True
        self.send(A_CLSE, stream.local_id, stream.remote_id)
        if stream.task is not None:
            stream.task.cancel()  # terminates the command

    def finish(self, stream: _Stream) -> None:
        if self.streams.pop(stream.local_id, None) is not stream:
            return
        if stream.grace is not None:
            stream.grace.cancel()
        if stream.completed:
            self.peer._shell_completed(stream.generation)

    async def write(self, stream: _Stream, data: bytes) -> None:
        for start in range(0, len(data), self.maxdata):
            stream.acked.clear()
            self.send(A_WRTE, stream.local_id, stream.remote_id, data[start:start + self.maxdata])
            await self.writer.drain()
            await stream.acked.wait()

    async def teardown(self) -> None:
        tasks = [s.task for s in self.streams.values() if s.task is not None]
        for stream in list(self.streams.values()):
            if stream.completed:
                self.finish(stream)
            elif stream.task is not None:
                stream.task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def shell(self, stream: _Stream, command: str) -> None:
        peer = self.peer
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", peer.map_command(command), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=peer.root / _DEVICE_TMP[1:],
            env=peer._shell_env(), start_new_session=True)  # own process group, so a kill reaches its children
        peer._procs.add(proc)
        try:
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(self.maxdata):
                await self.write(stream, chunk)
            await proc.wait()
            stream.completed = True
        finally:
            peer._procs.discard(proc)
            if proc.returncode is None:
                _kill(proc)
                await proc.wait()

    async def sync(self, stream: _Stream) -> None:
        buffer, upload = bytearray(), None
        try:
            while True:
                buffer += await stream.inbox.get()
                while len(buffer) >= 8:  # requests may be split across or packed within WRTEs
                    request, arg = struct.unpack_from("<4sI", buffer)
                    size = 0 if request in (b"DONE", b"QUIT") else arg  # DONE carries mtime in the length field
                    if size > (SYNC_DATA_MAX if request == b"DATA" else 4096):
                        await self.fail(stream, f"sync request {request!r} too large ({size} bytes)")
                        return
                    if len(buffer) < 8 + size:
                        break
                    payload = bytes(buffer[8:8 + size])
                    del buffer[:8 + size]
                    if request == b"SEND":
                        upload = _Upload(self.peer, payload.decode("utf-8", "replace"))
                    elif request == b"DATA" and upload is not None:
                        upload.write(payload)
                    elif request == b"DONE" and upload is not None:
                        done, upload = upload, None
                        if error := done.finish(arg):
                            await self.fail(stream, error)
                            return
                        self.peer._count(push=(done.path, done.size))
                        await self.write(stream, b"OKAY" + bytes(4))
                    elif not await self.sync_request(stream, request, payload.decode("utf-8", "replace")):
                        return
        finally:
            if upload is not None:
                upload.discard()

    async def sync_request(self, stream: _Stream, request: bytes, path: str) -> bool:
        if request == b"STAT":
            try:
                st = os.lstat(self.peer.device_path(path))
                mode, size, mtime = st.st_mode, st.st_size, int(st.st_mtime)
            except (OSError, ValueError):
                mode = size = mtime = 0  # v1 STAT has no error reply: zeros mean "missing"
            await self.write(stream, b"STAT" + struct.pack("<3I", mode, size & 0xFFFFFFFF, mtime & 0xFFFFFFFF))
        elif request == b"LIST":
            reply = bytearray()
            try:
                with os.scandir(self.peer.device_path(path)) as entries:
                    for entry in entries:
                        st, name = entry.stat(follow_symlinks=False), entry.name.encode()
                        reply += b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF,
                                                       int(st.st_mtime) & 0xFFFFFFFF, len(name)) + name
            except (OSError, ValueError):
                pass  # adbd lists nothing for what it cannot open
            await self.write(stream, bytes(reply) + b"DONE" + bytes(16))
        elif request == b"RECV":
            try:
                file = open(self.peer.device_path(path), "rb")
            except (OSError, ValueError) as exc:
                await self.fail(stream, _describe(path, exc))
                return False
            reply, total = bytearray(), 0
            with file:
                while chunk := file.read(SYNC_DATA_MAX):
                    reply += b"DATA" + struct.pack("<I", len(chunk)) + chunk
                    total += len(chunk)
                    if len(reply) >= self.maxdata:
                        cut = len(reply) - len(reply) % self.maxdata
                        await self.write(stream, bytes(reply[:cut]))
                        del reply[:cut]
            await self.write(stream, bytes(reply) + b"DONE" + bytes(4))
            self.peer._count(pull=(path, total))
        elif request == b"QUIT":
            return False
        else:
            await self.fail(stream, f"unexpected sync request {request!r}")
            return False
        return True

    async def fail(self, stream: _Stream, message: str) -> None:
        encoded = message.encode()
        await self.write(stream, b"FAIL" + struct.pack("<I", len(encoded)) + encoded)


def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LoopbackAdbPeer:
    """A device-side ADB peer on ``host:port`` whose file system is ``root``; see the module docstring.

    The event loop runs in a daemon thread, so synchronous tests and clients can use it directly; every public
    method is thread-safe. ``drop_after_shells`` is one-shot: after that many more shell/exec streams complete,
    every connection is closed (and with ``refuse_after_drop`` new ones are refused until ``restore()``)."""

    def __init__(self, root: Path | str, *, host: str = "127.0.0.1", port: int = 0, auth: str = "none",
                 authorized_keys: Iterable[str] = (), accept_new_keys: bool = False,
                 properties: Mapping[str, str] | None = None, drop_after_shells: int | None = None,
                 refuse_after_drop: bool = False) -> None:
        if auth not in ("none", "keys"):
            raise ValueError(f"auth must be 'none' or 'keys', not {auth!r}")
        self.root = Path(root).resolve()
        if shlex.quote(str(self.root)) != str(self.root):
            # mapped paths are pasted into the client's command inside whatever quotes it used
            raise ValueError(f"root {str(self.root)!r} holds characters that would break shell quoting")
        self.host, self.port, self.auth = host, port, auth
        self.accept_new_keys, self.refuse_after_drop = accept_new_keys, refuse_after_drop
        self._keys = [parse_android_pubkey(text) for text in authorized_keys]
        self._properties = dict(properties or {})
        self._lock = threading.Lock()  # guards the tally, keys and the drop countdown
        self._lifecycle = threading.RLock()
        self._tally = _Tally()
        self._shells_until_drop, self._drop_generation = drop_after_shells, 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[_Connection, asyncio.Task[None]] = {}
        self._procs: set[asyncio.subprocess.Process] = set()

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def properties(self) -> dict[str, str]:
        machine = platform.machine().lower()
        abi = "arm64-v8a" if machine in ("aarch64", "arm64") else "x86" if machine in ("x86", "i386", "i686") \
            else "x86_64"
        defaults = {"ro.product.model": "tailorkit loopback", "ro.product.manufacturer": "tailorkit",
                    "ro.product.name": "loopback", "ro.product.device": "loopback",
                    "ro.board.platform": f"host-{platform.machine()}", "ro.build.version.sdk": "34",
                    "ro.build.version.release": "14", "ro.product.cpu.abi": abi, "ro.product.cpu.abilist": abi,
                    "ro.serialno": f"loopback-{self.port}"}
        return defaults | self._properties

    @property
    def drop_after_shells(self) -> int | None:
        with self._lock:
            return self._shells_until_drop

    @drop_after_shells.setter
    def drop_after_shells(self, count: int | None) -> None:
        with self._lock:
            self._shells_until_drop = count
            self._drop_generation += 1

    @property
    def stats(self) -> PeerStats:
        with self._lock:
            return self._tally.snapshot()

    def reset_stats(self) -> None:
        with self._lock:
            self._tally = _Tally()

    def device_path(self, path: str) -> Path:
        """The host path for a device path; ``PermissionError`` when it (or a symlink on it) leaves ``root``."""
        joined = posixpath.join(_DEVICE_TMP, path)  # relative paths are relative to /data/local/tmp
        host = Path(os.path.normpath(os.path.join(self.root, joined.lstrip("/"))))
        resolved = host.resolve()  # follows the symlinks that exist along the way
        if not (host.is_relative_to(self.root) and resolved.is_relative_to(self.root)):
            raise PermissionError(f"permission denied: {path} is outside the device sandbox")
        return resolved

    def map_command(self, command: str) -> str:
        """``command`` with the device prefixes that start a path rewritten into ``root``."""
        return _PREFIX_RE.sub(lambda match: f"{self.root}{match.group(1)}", command)

    def start(self) -> Self:
        with self._lifecycle:
            if self._thread is not None:
                return self
            for sub in (_DEVICE_TMP, "/sdcard", "/.peer/bin"):
                (self.root / sub[1:]).mkdir(parents=True, exist_ok=True)
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"adb-peer-{self.root.name}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            try:
                self._call(self._listen())
            except BaseException:
                self._halt()
                raise
            self._write_getprop()
            log.info("serving adb on %s (root %s)", self.serial, self.root)
            return self

    def stop(self) -> None:
        """Close every connection, terminate running commands and stop listening. ``start()`` reopens the port."""
        with self._lifecycle:
            if self._loop is None:
                return
            try:
                self._call(self._shutdown())
            finally:
                self._halt()

    def disconnect_all(self) -> None:
        """Close every current connection now, as if the phone was unplugged."""
        self._call(self._disconnect())

    def restore(self) -> None:
        """Accept connections again after a drop with ``refuse_after_drop``."""
        self._call(self._listen())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inside the event loop ------------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the ADB peer is not running")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _halt(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections[conn] = asyncio.current_task()  # type: ignore[assignment]
        self._count(connection=1)
        try:
            await conn.run()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("connection ended: %r", exc)
        except _ProtocolError as exc:
            log.warning("closing connection: %s", exc)
        finally:
            del self._connections[conn]
            await conn.teardown()
            writer.close()

    async def _disconnect(self, refuse: bool = False) -> None:
        handlers = list(self._connections.values())
        self._abort_all(refuse)
        if handlers:
            await asyncio.wait(handlers, timeout=10)

    def _abort_all(self, refuse: bool = False) -> None:
        # Synchronous, so nothing already buffered from a client gets an answer once a drop is decided.
        if refuse and self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._connections):
            conn.writer.transport.abort()

    async def _shutdown(self) -> None:
        await self._disconnect(refuse=True)
        for proc in list(self._procs):  # a handler that outlived the wait must not leave its command behind
            _kill(proc)

    def _shell_completed(self, generation: int) -> None:
        with self._lock:
            if self._shells_until_drop is None or generation != self._drop_generation:
                return
            self._shells_until_drop -= 1
            if self._shells_until_drop > 0:
                return
            self._shells_until_drop = None
        log.info("dropping every connection%s", " and refusing new ones" if self.refuse_after_drop else "")
        self._abort_all(refuse=self.refuse_after_drop)

    def _verify(self, token: bytes, signature: bytes) -> bool:
        with self._lock:
            keys = list(self._keys)
        for key in keys:
            try:
                key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
                return True
            except InvalidSignature:
                continue
        return False

    def _authorize(self, key: rsa.RSAPublicKey) -> None:
        with self._lock:
            self._keys.append(key)

    def _count(self, *, sent: int = 0, received: int = 0, connection: int = 0, handshakes: int = 0,
               auth_prompts: int = 0, service: str | None = None, command: str | None = None,
               push: tuple[str, int] | None = None, pull: tuple[str, int] | None = None) -> None:
        with self._lock:
            tally = self._tally
            tally.bytes_to_client += sent
            tally.messages_to_client += bool(sent)
            tally.bytes_from_client += received
            tally.messages_from_client += bool(received)
            tally.connections += connection
            tally.handshakes += handshakes
            tally.auth_prompts += auth_prompts
            if service is not None:
                tally.services[service] += 1
            if command is not None:
                tally.shell_commands.append(command)
            if push is not None:
                tally.pushes.append(push)
            if pull is not None:
                tally.pulls.append(pull)

    def _shell_env(self) -> dict[str, str]:
        home = str(self.root / _DEVICE_TMP[1:])
        path = str(self.root / ".peer" / "bin") + os.pathsep + os.environ.get("PATH", os.defpath)
        return os.environ | {"PATH": path, "HOME": home, "TMPDIR": home}

    def _write_getprop(self) -> None:
        props = self.properties
        lines = ["#!/bin/sh", "# getprop for the tailorkit loopback ADB peer", 'if [ "$#" -eq 0 ]; then']
        lines += [f"  printf '%s\\n' {shlex.quote(f'[{key}]: [{value}]')}" for key, value in sorted(props.items())]
        lines += ["  exit 0", "fi", 'case "$1" in']
        lines += [f"  {shlex.quote(key)}) printf '%s\\n' {shlex.quote(value)} ;;" for key, value in props.items()]
        lines += ["  *) printf '%s\\n' \"${2-}\" ;;", "esac", ""]
        script = self.root / ".peer" / "bin" / "getprop"
        script.write_text("\n".join(lines))
        script.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tailorkit.testing.adb_peer",
                                     description="Serve a loopback ADB device for `adb connect` by hand.")
    parser.add_argument("--root", type=Path, required=True, help="directory that stands in for the device's /")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--auth", choices=("none", "keys"), default="none")
    parser.add_argument("--accept-new-keys", action="store_true", help="tap 'Allow' for every new key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    args.root.mkdir(parents=True, exist_ok=True)
    with LoopbackAdbPeer(args.root, host=args.host, port=args.port, auth=args.auth,
                         accept_new_keys=args.accept_new_keys) as peer:
        print(f"serving adb on {peer.host}:{peer.port} (root {peer.root})", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
