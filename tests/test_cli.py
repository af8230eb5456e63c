from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import NOTE10, needs_shared, run_cli


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ")
    return lines[-1]


def test_profile_json_on_onnx(small_onnx: Path) -> None:
    result = run_cli("profile", str(small_onnx), "--json", "--runs", "5", "--warmup", "1", "--per-op")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["latency_ms"]["n_total"] == 5 and data["latency_ms"]["median"] > 0
    assert data["settings"]["runs"] == 5 and data["device"]["name"] == "cpu"
    assert {op["op_type"] for op in data["ops"]} >= {"Conv", "Gemm"}


def test_profile_per_op_table_on_a_builtin() -> None:
    result = run_cli("profile", "ofa-mbv3-min", "--resolution", "128", "--per-op", "--runs", "5", "--warmup", "1",
                     "--threads", "1")
    assert result.returncode == 0, result.stderr
    for heading in ("End-to-end latency", "Operator-wise profiling", "cdf %", "Summary by op type"):
        assert heading in result.stdout


def test_profile_torch_module_by_import_path(tmp_path: Path) -> None:
    (tmp_path / "mymodel.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.c = torch.nn.Conv2d(3, 4, 3)\n    def forward(self, x):\n        return self.c(x)\n")
    ok = run_cli("profile", "mymodel:Net", "--shape", "1x3x32x32", "--json", "--runs", "3", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["input_shapes"] == {"input": [1, 3, 32, 32]}
    assert "needs its input shape" in _error_line(run_cli("profile", "mymodel:Net", cwd=tmp_path))
    assert "has no attribute" in _error_line(run_cli("profile", "mymodel:Nope", "--shape", "1x3x8x8", cwd=tmp_path))


@pytest.mark.parametrize("args", [("bogus",), ("table", "list"), ("search", "--bogus")])
def test_usage_mistakes_are_a_usage_message_not_a_traceback(args: tuple[str, ...]) -> None:
    res = run_cli(*args)
    assert res.returncode == 2
    assert "No such" in res.stderr and "Traceback" not in res.stderr


def test_commands_that_need_no_network_do_not_load_torch() -> None:
    """Listing spaces and devices, reading tables, training predictors and searching never build a network:
    they must start in a fraction of a second, not pay torch's ~1.5 s import on every call."""
    light = ["tailorkit.cli", "tailorkit.spaces", "tailorkit.devices", "tailorkit.profiler.store",
             "tailorkit.predictors", "tailorkit.search.api", "tailorkit.search.runner", "tailorkit.export",
             "tailorkit.export.tflite"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in light)
            + "from tailorkit.spaces import spaces\n"
            + "[spaces.create(n).sample(__import__('numpy').random.default_rng(0)) for n in spaces.names()]\n"
            + "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_cli_run_past_its_timeout_is_killed_and_the_next_one_runs() -> None:
    # run_cli forks commands from a warm server (tests/cli_server.py): a timeout must end the command, as
    # subprocess.run's does, and leave the server answering
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli("space", "list", timeout=0.01)
    again = run_cli("space", "list")
    assert again.returncode == 0 and "ofa-mbv3" in again.stdout


def test_devices_lists_builtin_and_configured(tmp_path: Path) -> None:
    (tmp_path / "tailor.toml").write_text('[devices.pinned]\nkind = "onnxruntime"\naffinity = [0]\n'
                                          '[devices.pixel]\nkind = "android"\nserial = "x"\n')
    result = run_cli("devices", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "reachable" in lines["cpu"] and "reachable" in lines["pinned"]
    assert "unavailable" in lines["pixel"]
    from tailorkit.devices.tvm import default_tvm_python

    assert ("reachable" if default_tvm_python().exists() else "make setup") in lines["tvm"]



def test_devices_shows_messages_with_brackets_verbatim(tmp_path: Path) -> None:
    # install hints name extras ('tailorkit[tflite]'); rich markup would swallow them
    (tmp_path / "tailor.toml").write_text('[devices.gpu]\nkind = "tvm"\npython = "/no/[such]/python"\n')
    result = run_cli("devices", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[such]" in result.stdout

# ---------------------------------------------------------------------------------------------- bad input


def test_missing_model_file(tmp_path: Path) -> None:
    assert "does not exist" in _error_line(run_cli("profile", str(tmp_path / "nope.onnx")))


def test_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("this is not a model")
    assert "is not an ONNX model" in _error_line(run_cli("profile", str(path)))


def test_dynamic_dims_without_shape(dynamic_onnx: Path) -> None:
    line = _error_line(run_cli("profile", str(dynamic_onnx)))
    assert "dynamic dims" in line and "--shape" in line
    ok = run_cli("profile", str(dynamic_onnx), "--shape", "input:2x3x16x16", "--runs", "3", "--json")
    assert ok.returncode == 0, ok.stderr


def test_unknown_device_lists_known(small_onnx: Path) -> None:
    line = _error_line(run_cli("profile", str(small_onnx), "--device", "pixel9"))
    assert "unknown device 'pixel9'" in line and "known: cpu" in line


def test_malformed_config(tmp_path: Path, small_onnx: Path) -> None:
    (tmp_path / "tailor.toml").write_text("[devices.cpu2\nkind = 1\n")
    assert "not valid TOML" in _error_line(run_cli("profile", str(small_onnx), cwd=tmp_path))
    (tmp_path / "tailor.toml").write_text("[benchmark]\nruns = -2\n")
    assert "runs must be >= 1" in _error_line(run_cli("devices", cwd=tmp_path))


def test_unopenable_database() -> None:
    line = _error_line(run_cli("table", "build", "--resolution", "128", "--db", "sqlite:////no/such/dir/t.db"))
    assert "cannot open the database" in line
    assert "no database" in _error_line(run_cli("table", "show", "--db", "sqlite:////tmp/tailor-missing-xyz.db"))


@pytest.mark.parametrize("runs", ["0", "-4"])
def test_nonpositive_runs(small_onnx: Path, runs: str) -> None:
    assert "runs must be >= 1" in _error_line(run_cli("profile", str(small_onnx), "--runs", runs))


@pytest.mark.parametrize("body, match", [
    ("Conv-input:224x224x3-output:112x112x24-extra:\n  count: 1\n  mean: 0.1\n  std: 0.0\n", "malformed op key"),
    ("Conv-input:224x224x3-output:112x112x24:\n  count: 1\n  std: 0.0\n", "has no mean"),
])
def test_bad_yaml_import_stores_nothing(tmp_path: Path, body: str, match: str) -> None:
    table = tmp_path / "bad.yaml"
    table.write_text("Logits-input:1x1x1280-output:1000:\n  count: 1\n  mean: 0.1\n  std: 0.0\n" + body)
    db = tmp_path / "t.db"
    assert match in _error_line(run_cli("table", "import", str(table), "--db", f"sqlite:///{db}"))
    assert not db.exists()  # the table is validated before the store is opened


# ----------------------------------------------------------------------------------------------- table


@needs_shared(NOTE10)
def test_table_import_show_export_round_trip(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    source = NOTE10 / "224_lookup_table.yaml"
    imported = run_cli("table", "import", str(source), "--name", "note10-224", "--device", "note10", "--db", db)
    assert imported.returncode == 0, imported.stderr
    shown = run_cli("table", "show", "--db", db)
    assert "note10-224" in shown.stdout and "96" in shown.stdout
    entries = run_cli("table", "show", "note10-224", "--db", db)
    assert "expanded_conv-input:14x14x136" in entries.stdout and "96 entries" in entries.stdout
    out = tmp_path / "out.yaml"
    exported = run_cli("table", "export", "note10-224", "-o", str(out), "--db", db)
    assert exported.returncode == 0, exported.stderr
    assert out.read_bytes() == source.read_bytes()
    again = run_cli("table", "import", str(source), "--name", "note10-224", "--db", db)
    assert "already exists" in _error_line(again)


def test_table_build_then_export_csv(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    built = run_cli("table", "build", "--space", "ofa-mbv3", "--resolution", "128", "--db", db, "--runs", "2",
                    "--warmup", "0", "--number", "1")
    assert built.returncode == 0, built.stderr
    # the space's 96 ops, and the digits classifier besides ImageNet's
    assert "97 measured now, 0 already" in " ".join(built.stdout.split())
    more = run_cli("table", "build", "--space", "ofa-mbv3", "--resolution", "128", "--db", db, "--runs", "2",
                   "--warmup", "0", "--number", "1", "--classes", "10", "--classes", "37")
    assert more.returncode == 0, more.stderr
    assert "1 measured now, 97 already" in " ".join(more.stdout.split())
    out = tmp_path / "t.csv"
    assert run_cli("table", "export", "ofa-mbv3-w1-r128", "-o", str(out), "--db", db).returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("key,mean,std,n") and len(lines) == 99
    assert sum(line.startswith("Logits-") for line in lines) == 3
    assert "unknown table format" in _error_line(
        run_cli("table", "export", "ofa-mbv3-w1-r128", "-o", str(out), "--format", "xml", "--db", db))


def test_more_runs_than_the_old_cap(small_onnx: Path) -> None:
    result = run_cli("profile", str(small_onnx), "--runs", "1500", "--number", "1", "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["latency_ms"]["n_total"] == 1500


def test_directory_and_broken_modules_as_models(tmp_path: Path) -> None:
    (tmp_path / "d.onnx").mkdir()
    assert "is a directory" in _error_line(run_cli("profile", str(tmp_path / "d.onnx")))
    (tmp_path / "broken.py").write_text("def Net(width):\n    return None\n")
    assert "without arguments failed" in _error_line(run_cli("profile", "broken:Net", "--shape", "1x3x8x8",
                                                             cwd=tmp_path))
    (tmp_path / "syntax.py").write_text("def (:\n")
    assert "cannot import 'syntax'" in _error_line(run_cli("profile", "syntax:Net", "--shape", "1x3x8x8",
                                                           cwd=tmp_path))


@pytest.mark.parametrize("args, match", [
    (["--width", "2"], "widths"), (["--resolution", "150"], "resolutions"),
    (["--space", "nb201"], "no ops to measure here"), (["--space", "mnas"], "unknown spaces"),
    (["--threads", "0"], "threads must be >= 1"),
])
def test_failed_table_build_leaves_no_database(tmp_path: Path, args: list[str], match: str) -> None:
    db = tmp_path / "n.db"
    assert match in _error_line(run_cli("table", "build", "--db", f"sqlite:///{db}", *args))
    assert not db.exists()


def test_devices_shows_configured_threads(tmp_path: Path) -> None:
    (tmp_path / "tailor.toml").write_text('[devices.two]\nkind = "onnxruntime"\nthreads = 2\n')
    result = run_cli("devices", cwd=tmp_path)
    assert "2 thread(s)" in result.stdout


def test_export_to_an_unwritable_place(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    table = tmp_path / "t.yaml"
    table.write_text("Logits-input:1x1x1280-output:1000:\n  count: 1\n  mean: 0.1\n  std: 0.0\n")
    assert run_cli("table", "import", str(table), "--name", "t", "--db", db).returncode == 0
    assert "cannot write" in _error_line(run_cli("table", "export", "t", "-o", "/proc/t.yaml", "--db", db))


PROXYLESS = NOTE10.parent / "proxylessnas_mobile_trim.yaml"


@needs_shared(PROXYLESS)
def test_import_a_foreign_table(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    result = run_cli("table", "import", str(PROXYLESS), "--format", "proxylessnas", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "imported 72 entries" in result.stdout
    shown = run_cli("table", "show", "proxylessnas_mobile_trim", "--db", db)
    assert shown.returncode == 0 and "expand:48" in shown.stdout
    assert "--format must be one of" in _error_line(run_cli("table", "import", str(PROXYLESS), "--format",
                                                            "tfnas", "--db", db))
    wrong_space = run_cli("table", "import", str(PROXYLESS), "--format", "proxylessnas", "--space", "ofa-mbv3",
                          "--name", "other", "--db", db)
    assert "belongs to space 'proxylessnas-mobile'" in _error_line(wrong_space)


def test_space_list_sample_and_ops(tmp_path: Path) -> None:
    listed = run_cli("space", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {json.loads(line)["name"]: json.loads(line) for line in listed.stdout.splitlines()}
    assert set(rows) == {"fbnet", "hat", "mnasnet", "nb201", "ofa-mbv3", "spos", "spos-reduced"} \
        and rows["nb201"]["archs"] == 15625
    assert rows["ofa-mbv3"]["buildable"] and not rows["hat"]["buildable"]
    sampled = run_cli("space", "sample", "ofa-mbv3", "--n", "2", "--seed", "7")
    assert sampled.returncode == 0, sampled.stderr
    lines = sampled.stdout.splitlines()
    again = run_cli("space", "sample", "ofa-mbv3", "--n", "2", "--seed", "7").stdout.splitlines()
    assert len(lines) == 2 and lines == again
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(lines[0])
    ops = run_cli("space", "ops", "ofa-mbv3", "--arch", f"@{arch_file}", "--json")
    assert ops.returncode == 0, ops.stderr
    keys = [json.loads(line)["key"] for line in ops.stdout.splitlines()]
    arch = json.loads(lines[0])
    assert len(keys) == 2 + sum(arch["d"]) + 4 and keys[0].startswith(f"Conv-input:{arch['r']}x{arch['r']}x3")
    nb = run_cli("space", "sample", "nb201", "--n", "1")
    assert json.loads(nb.stdout)["arch"].startswith("|")
    bad = dict(arch, e=[5] * 20)
    assert "e must be 20 values from (3, 4, 6)" in _error_line(run_cli("space", "ops", "ofa-mbv3", "--arch",
                                                                       json.dumps(bad)))
    assert "unknown spaces 'darts'" in _error_line(run_cli("space", "sample", "darts"))
    assert "no ops to build" in _error_line(run_cli("space", "ops", "nb201", "--arch", nb.stdout.strip()))
    assert "cannot read arch file" in _error_line(run_cli("space", "ops", "ofa-mbv3", "--arch", "@/nonexistent"))
    (tmp_path / "latin1.json").write_bytes(b'{"ks": "\xe9"}')
    assert "not UTF-8" in _error_line(run_cli("space", "ops", "ofa-mbv3", "--arch", f"@{tmp_path / 'latin1.json'}"))
    assert "has no ops to measure" in _error_line(run_cli("table", "build", "--space", "hat", "--db",
                                                          f"sqlite:///{tmp_path}/t.db"))
    assert not (tmp_path / "t.db").exists()


def test_spos_supernet_eval_runs_paths_at_the_space_resolution(tmp_path: Path) -> None:
    ckpt = tmp_path / "spos"
    trained = run_cli("supernet", "train", "--space", "spos", "-o", str(ckpt), "--epochs", "1",
                      "--steps-per-epoch", "1", "--subnets", "1")
    assert trained.returncode == 0, trained.stderr
    assert "after --warmup-epochs" in trained.stderr  # one step, no warm-up: at chance, and the hint says why
    assert json.loads((ckpt / "config.json").read_text())["warmup_epochs"] == 0  # half of 1 epoch
    assert "warmup_epochs must be in 0..epochs-1" in _error_line(run_cli(
        "supernet", "train", "--space", "spos", "-o", str(tmp_path / "w"), "--epochs", "2", "--warmup-epochs", "2"))
    assert not (tmp_path / "w").exists()
    result = run_cli("supernet", "eval", str(ckpt), "--json", "--split", "val")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(r["arch"]["blocks"]) for r in rows] == [20, 20]  # largest and smallest
    assert all(r["accuracy"] == r["extracted_accuracy"] for r in rows)


def test_supernet_train_resume_and_eval(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    args = ["supernet", "train", "-o", str(ckpt), "--epochs", "1", "--steps-per-epoch", "2", "--subnets", "1"]
    trained = run_cli(*args)
    assert trained.returncode == 0, trained.stderr
    assert "epoch 1/1" in trained.stderr and (ckpt / "supernet.pt").exists()
    assert "warning: the supernet is still at chance" in trained.stderr  # two steps teach it nothing; it says so
    config = json.loads((ckpt / "config.json").read_text())
    assert (config["sandwich"], config["distill"]) == (True, 1.0)  # the defaults, recorded for resume checks
    again = run_cli(*args)  # already done: resumes, trains nothing, keeps the checkpoint
    assert again.returncode == 0 and "nothing to train" in again.stderr and "epoch 1/1" not in again.stderr
    arch = json.dumps({"ks": [3] * 20, "e": [4] * 20, "d": [2] * 5, "r": 160})
    result = run_cli("supernet", "eval", str(ckpt), "--arch", arch, "--json", "--split", "val")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["accuracy"] == row["extracted_accuracy"] and 0 <= row["accuracy"] <= 1
    assert "no supernet checkpoint" in _error_line(run_cli("supernet", "eval", str(tmp_path / "none")))
    other = run_cli("supernet", "train", "-o", str(ckpt), "--epochs", "3")
    assert "was trained with" in _error_line(other)
    labels_only = run_cli(*args, "--no-sandwich", "--distill", "0")  # other settings than the checkpoint's
    assert "was trained with" in _error_line(labels_only)
    assert "distill must be >= 0" in _error_line(run_cli("supernet", "train", "-o", str(tmp_path / "z"),
                                                         "--distill", "-1"))
    assert "no supernet for space 'nb201'" in _error_line(run_cli("supernet", "train", "-o", str(tmp_path / "x"),
                                                                  "--space", "nb201"))
    assert "widths" in _error_line(run_cli("supernet", "train", "-o", str(tmp_path / "y"), "--width", "0.5"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
