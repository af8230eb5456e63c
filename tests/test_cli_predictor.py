from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tailorkit.spaces import NB201Space

from .conftest import NOTE10, needs_shared, run_cli
from .test_cli import _error_line


@pytest.fixture(scope="module")
def nb201_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small NB201-style measurement file with three 'devices' whose latency is additive in the ops."""
    rng = np.random.default_rng(0)
    space = NB201Space()
    archs = [space.sample(rng) for _ in range(1000)]
    counts = space.encode_batch(archs).reshape(1000, 6, 5).sum(axis=1)
    path = tmp_path_factory.mktemp("data") / "nb.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch_str", "dev_a", "dev_b", "dev_new", "note"])
        for arch, c in zip(archs, counts, strict=True):
            writer.writerow([arch.to_str(), 1 + c @ [0, .1, 1, 3, .5], 2 + c @ [0, .3, .5, 1, 2],
                             0.5 + c @ [0, .2, .8, 2.5, 1], "x"])
    return path


@pytest.mark.parametrize("kind", ["gbm", "auto", "additive"])
def test_train_eval_predict(tmp_path: Path, nb201_csv: Path, kind: str) -> None:
    out = tmp_path / "p.tlp"
    trained = run_cli("predictor", "train", "--kind", kind, "--csv", str(nb201_csv), "--target", "dev_a",
                      "--encoding", "nb201", "--rows", "0:800", "-o", str(out))
    assert trained.returncode == 0, trained.stderr
    if kind == "auto":  # every edge of these devices runs: the plain additive model wins
        assert "saved auto predictor (chose additive) for dev_a" in " ".join(trained.stdout.split())
    result = run_cli("predictor", "eval", str(out), "--csv", str(nb201_csv), "--rows", "800:", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 200 and metrics["acc10"] > 90 and metrics["spearman"] > 0.95
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    predicted = run_cli("predictor", "predict", str(out), "--arch", arch)
    assert predicted.returncode == 0, predicted.stderr
    value = float(predicted.stdout.split()[0])
    assert abs(value - (1 + 3 * 3 + 0.5 + 2 * 0.1)) / 10.7 < 0.15


def test_fewshot_from_ten_rows(tmp_path: Path, nb201_csv: Path) -> None:
    out = tmp_path / "f.tlp"
    trained = run_cli("predictor", "train", "--kind", "fewshot", "--csv", str(nb201_csv), "--target", "dev_new",
                      "--encoding", "nb201", "--rows", "0,1,2,3,4,5,6,7,8,9", "--meta-devices", "dev_a,dev_b",
                      "--meta-rows", "100:400", "-o", str(out))
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads(run_cli("predictor", "eval", str(out), "--csv", str(nb201_csv), "--rows", "10:100",
                                 "--json").stdout)
    assert metrics["spearman"] > 0.9


@needs_shared(NOTE10)
def test_lut_predictor_from_a_table_file(tmp_path: Path) -> None:
    out = tmp_path / "l.tlp"
    assert run_cli("predictor", "train", "--kind", "lut", "--table-file", str(NOTE10 / "160_lookup_table.yaml"),
                   "-o", str(out)).returncode == 0
    arch = json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160})
    result = run_cli("predictor", "predict", str(out), "--width", "1.2", "--arch", arch)
    assert result.returncode == 0, result.stderr and float(result.stdout.split()[0]) > 0
    wrong = json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224})
    assert "no latency for op" in _error_line(run_cli("predictor", "predict", str(out), "--width", "1.2",
                                                      "--arch", wrong))


def test_bad_predictor_inputs(tmp_path: Path, nb201_csv: Path) -> None:
    base = ["predictor", "train", "--csv", str(nb201_csv), "--encoding", "nb201", "-o", str(tmp_path / "x.tlp")]
    assert "no device 'missing'" in _error_line(run_cli(*base, "--kind", "gbm", "--target", "missing"))
    assert "--kind must be one of" in _error_line(run_cli(*base, "--kind", "forest", "--target", "dev_a"))
    bad = tmp_path / "bad.csv"
    bad.write_text(nb201_csv.read_text().replace(",x\n", ",x\n", 1).replace("\n|", "\n|nor_conv_9x9", 1))
    assert "arch" in _error_line(run_cli("predictor", "train", "--kind", "gbm", "--csv", str(bad), "--target",
                                         "dev_a", "--encoding", "nb201", "-o", str(tmp_path / "y.tlp")))
    negative = tmp_path / "neg.csv"
    lines = nb201_csv.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "-3"
    negative.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    assert "negative" in _error_line(run_cli("predictor", "train", "--kind", "gbm", "--csv", str(negative),
                                             "--target", "dev_a", "--encoding", "nb201", "-o", str(tmp_path / "z.tlp")))
    corrupt = tmp_path / "corrupt.tlp"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    assert "not a readable predictor" in _error_line(run_cli("predictor", "eval", str(corrupt), "--csv",
                                                             str(nb201_csv)))
    assert not (tmp_path / "x.tlp").exists()


HAT_XEON = NOTE10.parents[1] / "hat" / "wmt14ende_cpu_xeon_all.csv"


@needs_shared(HAT_XEON)
def test_ridge_on_a_hat_table(tmp_path: Path) -> None:
    out = tmp_path / "h.tlp"
    trained = run_cli("predictor", "train", "--kind", "ridge", "--csv", str(HAT_XEON), "--target", "latency",
                      "--encoding", "hat", "--rows", "0:1600", "-o", str(out))
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads(run_cli("predictor", "eval", str(out), "--csv", str(HAT_XEON), "--rows", "1800:",
                                 "--json").stdout)
    assert metrics["mape"] < 10 and metrics["spearman"] > 0.9


@needs_shared(NOTE10)
def test_kernel_predictor_and_interpolating_lut_from_one_table_file(tmp_path: Path) -> None:
    """Note10 has a table per resolution; a kernel model trained on 160 and 224 predicts a 192 subnet close to
    what the 192 table sums to, and an interpolating LUT built on 160 covers 192 too."""
    from tailorkit.core import LatencyTable
    from tailorkit.spaces import OFAMobileNetV3Space

    both = LatencyTable("both", {**LatencyTable.read(NOTE10 / "160_lookup_table.yaml").entries,
                                 **LatencyTable.read(NOTE10 / "224_lookup_table.yaml").entries})
    both.write(tmp_path / "both.yaml")
    out = tmp_path / "k.tlp"
    trained = run_cli("predictor", "train", "--kind", "kernel", "--table-file", str(tmp_path / "both.yaml"),
                      "-o", str(out))
    assert trained.returncode == 0, trained.stderr
    assert "expanded_conv" in trained.stdout
    space = OFAMobileNetV3Space(width=1.2)
    arch = space.largest(192)
    truth = sum(LatencyTable.read(NOTE10 / "192_lookup_table.yaml")[op.key].mean for op in space.ops(arch))
    arg = json.dumps(arch.to_dict())
    predicted = run_cli("predictor", "predict", str(out), "--width", "1.2", "--arch", arg)
    assert predicted.returncode == 0, predicted.stderr
    assert abs(float(predicted.stdout.split()[0]) / truth - 1) < 0.15
    per_op = run_cli("predictor", "eval", str(out), "--table-file", str(NOTE10 / "192_lookup_table.yaml"), "--json")
    assert per_op.returncode == 0, per_op.stderr
    metrics = json.loads(per_op.stdout)
    assert metrics["n"] == 96 and metrics["spearman"] > 0.9
    assert "evaluated per op" in _error_line(run_cli("predictor", "eval", str(out), "--csv", str(tmp_path / "x")))
    lut = tmp_path / "l.tlp"
    assert run_cli("predictor", "train", "--kind", "lut", "--interpolate", "--table-file",
                   str(NOTE10 / "160_lookup_table.yaml"), "-o", str(lut)).returncode == 0
    filled = run_cli("predictor", "predict", str(lut), "--width", "1.2", "--arch", arg)
    assert filled.returncode == 0, filled.stderr
    assert abs(float(filled.stdout.split()[0]) / truth - 1) < 0.25
    assert "--table names no table" in _error_line(run_cli("predictor", "train", "--kind", "kernel", "--table", ",",
                                                           "-o", str(tmp_path / "x.tlp")))
    assert "--interpolate is for --kind lut" in _error_line(run_cli(
        "predictor", "train", "--kind", "kernel", "--interpolate", "--table-file", str(tmp_path / "both.yaml"),
        "-o", str(tmp_path / "x.tlp")))
    assert not (tmp_path / "x.tlp").exists()


def test_adaptive_sampling_on_the_cpu(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/s.db"
    out = tmp_path / "k.tlp"
    args = ["predictor", "sample", "-o", str(out), "--db", db, "--resolutions", "128", "--rounds", "1",
            "--per-round", "3", "--initial", "4", "--candidates", "40", "--warmup", "1", "--runs", "3"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "fitted on 9 ops" in first.stdout
    again = run_cli(*args)  # resumes from the 9 stored ops and measures 3 more
    assert again.returncode == 0, again.stderr
    assert "fitted on 12 ops" in again.stdout
    arch = json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 136})  # a resolution never sampled
    result = run_cli("predictor", "predict", str(out), "--arch", arch)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[0]) > 0
