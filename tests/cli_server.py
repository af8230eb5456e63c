"""A fork server for the CLI tests: imports tailorkit's heavy dependencies once, then runs each `tailor`
invocation in a forked child that behaves like a fresh ``python -m tailorkit.cli`` process.

Why: about a hundred CLI tests each paid 2–4 s of imports (torch, scikit-learn, SciPy, onnxruntime) before
doing any work — a third of the suite's time on a 2-core CI runner. The child is still a separate process with
its own exit status, environment, working directory, stdin from /dev/null, stdout and stderr in files; the CLI
module runs as ``__main__`` through runpy, so its module-level objects are built fresh. An uncaught exception
prints its traceback and exits 1, ``sys.exit`` keeps its status, and the exit joins threads and runs the atexit
handlers as the interpreter does; only the teardown of the modules is skipped.

Protocol: one JSON request per line on stdin ({"args", "cwd", "env", "out", "err", "timeout"}); one JSON
reply per line on stdout ({"rc": int} or {"timeout": true}). The server only imports: the threads it has then
are the idle worker pools of OpenBLAS (numpy's and SciPy's) and onnxruntime, which re-create themselves in a
forked child, as they do under multiprocessing's fork start method.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def _preload() -> None:
    import numpy  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import torch  # noqa: F401

    import tailorkit.cli  # noqa: F401
    import tailorkit.predictors  # noqa: F401
    import tailorkit.search.api  # noqa: F401
    import tailorkit.search.specialize  # noqa: F401


def _child(req: dict) -> None:
    """Never returns: ends the child with the CLI's exit status."""
    os.setpgid(0, 0)  # a timeout kills the child's own subprocesses too
    if req.get("cwd"):
        os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    os.dup2(os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    import importlib
    import runpy

    sys.modules.pop("tailorkit.cli", None)  # as in a fresh `python -m`: the CLI module runs once, as __main__
    sys.path[0] = os.getcwd()  # what `python -m` puts first: modules beside the working directory import
    importlib.invalidate_caches()
    sys.argv = ["tailorkit.cli", *req["args"]]
    code = 0
    try:
        runpy.run_module("tailorkit.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # what the interpreter does with an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    # The interpreter's shutdown, less the module teardown: tearing down torch's and SciPy's objects writes to
    # every page the child shares with the server, a copy of the whole heap that took seconds.
    import atexit
    import threading

    threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads, as at a normal exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # Python's status when flushing stdout fails at exit
    os._exit(code)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"rc": os.waitstatus_to_exitcode(status)}
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return {"timeout": True}
        time.sleep(0.005)


def main() -> None:
    _preload()
    import gc

    gc.freeze()  # the children's collections then leave the preloaded objects (and their pages) alone
    reply = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints of the server must not corrupt the replies
    os.write(reply, b'{"ready": true}\n')
    for line in sys.stdin.buffer:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(reply)
            _child(req)
        os.write(reply, (json.dumps(_wait(pid, float(req.get("timeout") or 300))) + "\n").encode())


if __name__ == "__main__":
    main()
