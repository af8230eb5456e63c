from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAILOR_SHARED", ROOT.parent / "shared"))
NOTE10 = SHARED / "data" / "ofa_proxyless_luts" / "note10"


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"needs ../shared data: {path} is absent")


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def export_small_cnn(path: Path, dynamic_batch: bool = False) -> Path:
    torch.manual_seed(0)
    kwargs = {"dynamic_axes": {"input": {0: "batch"}}} if dynamic_batch else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(SmallCNN().eval(), (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                          input_names=["input"], output_names=["output"], **kwargs)
    return path


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_small_cnn(tmp_path_factory.mktemp("models") / "small.onnx")


@pytest.fixture(scope="session")
def dynamic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_small_cnn(tmp_path_factory.mktemp("models") / "dynamic.onnx", dynamic_batch=True)


_SESSION_ENV = dict(os.environ)  # the fork server starts from this, whatever a test has set when it first runs


def _cli_env(base: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k != "TAILOR_CONFIG"}
    env["COLUMNS"] = "200"
    return env


class _CliServer:
    """tests/cli_server.py, started on first use: each call a forked child that acts as a fresh process, without
    paying the imports again. TAILOR_TEST_FRESH_CLI=1 runs every call as a plain subprocess instead."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_server.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_cli_env(_SESSION_ENV))
        self.dir = Path(tempfile.mkdtemp(prefix="tailor-cli-"))
        if json.loads(self._readline()).get("ready") is not True:
            raise RuntimeError("the CLI fork server did not start")

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI fork server exited (status {self.proc.poll()})")
        return line.decode()

    def run(self, args: tuple[str, ...], cwd: Path | None, timeout: float) -> subprocess.CompletedProcess[str]:
        out, err = self.dir / "stdout", self.dir / "stderr"
        request = {"args": list(args), "cwd": str(cwd) if cwd else os.getcwd(), "env": _cli_env(), "out": str(out),
                   "err": str(err), "timeout": timeout}
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        reply = json.loads(self._readline())
        cmd = [sys.executable, "-m", "tailorkit.cli", *args]
        text = [p.read_text(encoding="utf-8", errors="replace") if p.exists() else "" for p in (out, err)]
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(cmd, timeout, output=text[0], stderr=text[1])
        return subprocess.CompletedProcess(cmd, reply["rc"], text[0], text[1])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


_server: list[_CliServer] = []


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real console entry point in its own process, as a user runs it (through the fork server, which only
    skips the imports)."""
    if os.environ.get("TAILOR_TEST_FRESH_CLI") != "1" and hasattr(os, "fork"):
        if not _server:
            _server.append(_CliServer())
            atexit.register(_server[0].close)
        try:
            return _server[0].run(args, cwd, timeout)
        except (OSError, RuntimeError):
            # the server itself died (killed from outside): this command fails, the next one gets a new server;
            # no retry, since the command may have started
            _server.pop().close()
            raise
    return subprocess.run([sys.executable, "-m", "tailorkit.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=_cli_env())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on loopback, started by the project's own script for this test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'tailorkit[postgres]')")
    workdir = tempfile.mkdtemp(prefix="tailor-pg-")  # under /tmp, reachable by the postgres user
    script = ROOT / "scripts" / "pg-local.sh"
    started = subprocess.run([str(script), "start", workdir, str(_free_port())], capture_output=True, text=True)
    if started.returncode == 3:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server here: {started.stderr.strip()}")
    if started.returncode != 0:
        log = Path(workdir, "server.log")
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {started.stderr.strip()} {log.read_text() if log.exists() else ''}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(script), "stop", workdir], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same store tests on SQLite and on a real PostgreSQL (a fresh database per test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def ofa_supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-1.0 OFA-MBv3 digits supernet trained briefly (25 steps): real weights for export and pruning."""
    from tailorkit.search.supernet import SupernetConfig, load_digits_splits, train_supernet

    ckpt = tmp_path_factory.mktemp("sn") / "ofa"
    train_supernet(SupernetConfig(epochs=1, steps_per_epoch=25, subnets_per_step=1, seed=0), ckpt,
                   data=load_digits_splits())
    return ckpt
