from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tailorkit.core import ConfigError
from tailorkit.predictors import datasets
from tailorkit.predictors.datasets import (
    HELP_SPLITS,
    LatencyDataset,
    hardware_embedding_index,
    hat_files,
    load_fbnet,
    load_hat,
    load_nb201,
    shared_data_dir,
)
from tailorkit.spaces import FBNetArch, FBNetSpace, NB201Arch, NB201Space
from tailorkit.spaces.hat import FEATURES

from .conftest import SHARED, needs_shared

DATA = SHARED / "data"
NB201_CSV = DATA / "help" / "nasbench201_latency_ms.csv"
FBNET_CSV = DATA / "help" / "fbnet_latency_ms.csv"
EMBEDDING = DATA / "help" / "hardware_embedding_index.json"
HAT_XEON = DATA / "hat" / "wmt14ende_cpu_xeon_all.csv"
HAT_NAMES = ["iwslt14deen_gpu_titanxp", "wmt14ende_cpu_raspberrypi", "wmt14ende_cpu_xeon", "wmt14ende_gpu_titanxp",
             "wmt14enfr_cpu_xeon", "wmt14enfr_gpu_titanxp", "wmt19ende_gpu_titanxp"]


@pytest.fixture(scope="module")
def nb201() -> LatencyDataset:
    if not NB201_CSV.exists():
        pytest.skip(f"needs ../shared data: {NB201_CSV} is absent")
    return load_nb201()


@pytest.fixture(scope="module")
def fbnet() -> LatencyDataset:
    if not FBNET_CSV.exists():
        pytest.skip(f"needs ../shared data: {FBNET_CSV} is absent")
    return load_fbnet()


@pytest.fixture
def data_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder that the loaders use, for writing broken files into."""
    (tmp_path / "help").mkdir()
    (tmp_path / "hat").mkdir()
    monkeypatch.setenv("TAILOR_SHARED_DATA", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------------------------ locating


@needs_shared(DATA / "help")
def test_shared_data_dir_found_without_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TAILOR_SHARED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # found from the package file even when the cwd is elsewhere
    assert shared_data_dir().resolve() == DATA.resolve()


def test_shared_data_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILOR_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path


def test_missing_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILOR_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="TAILOR_SHARED_DATA.*not a directory"):
        shared_data_dir()
    with pytest.raises(ConfigError, match="not a directory"):
        load_nb201()


def test_nothing_found_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TAILOR_SHARED_DATA", raising=False)
    monkeypatch.setattr(datasets, "_candidates", lambda: [tmp_path / "shared" / "data"])
    with pytest.raises(ConfigError, match="no shared latency data found"):
        shared_data_dir()


def test_empty_data_dir_names_the_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILOR_SHARED_DATA", str(tmp_path))
    for load in (load_nb201, load_fbnet):
        with pytest.raises(ConfigError, match="is missing"):
            load()
    with pytest.raises(ConfigError, match="HAT latency folder"):
        hat_files()
    with pytest.raises(ConfigError, match="is missing"):
        hardware_embedding_index("nb201")


# ------------------------------------------------------------------------------------------------ HELP


@needs_shared(NB201_CSV)
def test_nb201_shapes_and_order(nb201: LatencyDataset) -> None:
    assert (nb201.name, nb201.space, nb201.unit) == ("help/nb201", "nb201", "ms")
    assert nb201.X.shape == (15625, 30) and nb201.X.dtype == np.float32 and len(nb201) == 15625
    assert len(nb201.devices) == 27 and "raspi4" in nb201.devices and "1080ti_256" in nb201.devices
    for device in nb201.devices:
        y = nb201.y(device)
        assert y.dtype == np.float64 and y.shape == (15625,) and (y > 0).all()
    space = NB201Space()
    idx = [0, 1, 2, 9999, 15624]
    np.testing.assert_array_equal(nb201.X[idx], space.encode_batch([NB201Arch.from_str(nb201.archs[i]) for i in idx]))
    # README cross-check with HW-NAS-Bench: raspi4 / fpga for indices 0 and 1
    np.testing.assert_allclose(nb201.y("raspi4")[:2], [10.48198, 54.77740], atol=1e-5)
    np.testing.assert_allclose(nb201.y("fpga")[:2], [2.57296, 5.31536], atol=1e-5)


@needs_shared(NB201_CSV)
def test_nb201_unknown_device_lists_the_known(nb201: LatencyDataset) -> None:
    with pytest.raises(ConfigError, match="no device 'tpu'.*1080ti_1.*raspi4"):
        nb201.y("tpu")


@needs_shared(NB201_CSV)
def test_help_splits_name_real_devices(nb201: LatencyDataset) -> None:
    split = HELP_SPLITS["nb201"]
    assert set(split) == {"train", "valid", "test"}
    assert (len(split["train"]), len(split["valid"]), len(split["test"])) == (9, 4, 6)
    names = [d for devices in split.values() for d in devices]
    assert len(set(names)) == len(names) and set(names) <= set(nb201.devices)


@needs_shared(FBNET_CSV)
def test_help_fbnet_split_names_real_devices(fbnet: LatencyDataset) -> None:
    split = HELP_SPLITS["fbnet"]
    assert (len(split["train"]), len(split["valid"]), len(split["test"])) == (9, 4, 3)
    names = [d for devices in split.values() for d in devices]
    assert len(set(names)) == len(names) and set(names) <= set(fbnet.devices)


@needs_shared(FBNET_CSV)
def test_fbnet_shapes(fbnet: LatencyDataset) -> None:
    assert (fbnet.name, fbnet.space) == ("help/fbnet", "fbnet")
    assert fbnet.X.shape == (5000, 198) and fbnet.X.dtype == np.float32
    assert len(fbnet.devices) == 27 and "titanxp_64" in fbnet.devices
    assert not any(d.startswith("L") for d in fbnet.devices)
    arch = FBNetArch.from_str(fbnet.archs[0])
    assert arch.ops[:3] == (7, 8, 1)
    np.testing.assert_array_equal(fbnet.X[0], FBNetSpace().encode(arch))


@needs_shared(EMBEDDING)
@needs_shared(NB201_CSV)
@needs_shared(FBNET_CSV)
def test_hardware_embedding_index(nb201: LatencyDataset, fbnet: LatencyDataset) -> None:
    nb = hardware_embedding_index("nb201")
    assert nb == hardware_embedding_index("nasbench201")
    assert len(nb) == 10 and nb[:4] == [11982, 431, 55, 9] and max(nb) < len(nb201)
    fb = hardware_embedding_index("fbnet")
    assert len(fb) == 10 and max(fb) < len(fbnet)
    with pytest.raises(ConfigError, match="known: nb201"):
        hardware_embedding_index("darts")


# ------------------------------------------------------------------------------------------------ HAT


@needs_shared(DATA / "hat")
def test_hat_files() -> None:
    assert hat_files() == HAT_NAMES


@needs_shared(DATA / "hat")
@pytest.mark.parametrize("name", HAT_NAMES)
def test_hat_loads(name: str) -> None:
    ds = load_hat(name)
    assert (ds.name, ds.space, ds.devices) == (f"hat/{name}", "hat", ["latency", "encoder", "decoder"])
    assert ds.X.shape == (2000, 10) and ds.X.dtype == np.float64 and len(ds.archs) == 2000
    np.testing.assert_array_equal(ds.y("latency"), ds.y("encoder") + ds.y("decoder"))
    assert (ds.X[:, 1] == 6).all() and set(ds.X[:, 5]) == {1, 2, 3, 4, 5, 6}


@needs_shared(HAT_XEON)
def test_hat_xeon_values() -> None:
    ds = load_hat("wmt14ende_cpu_xeon_all.csv")  # the file name works as well as the stem
    assert ds.X[0].tolist() == [640, 6, 1194.6666666666667, 4.666666666666667, 640, 3, 1877.3333333333333, 4.0,
                                5.333333333333333, 2.0]
    assert ds.y("encoder")[0] == pytest.approx(9.922519326210022)
    assert ds.y("latency")[0] == pytest.approx(9.922519326210022 + 236.7689162492752)
    assert 100 < ds.y("latency").min() and ds.y("latency").max() < 500  # README: Xeon 103–499 ms


@needs_shared(DATA / "hat")
def test_unknown_hat_table() -> None:
    with pytest.raises(ConfigError, match="unknown HAT table 'wmt14ende_tpu'.*wmt14ende_cpu_xeon"):
        load_hat("wmt14ende_tpu")


# ------------------------------------------------------------------------------------------------ validation


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.write_text("\n".join(",".join(str(v) for v in row) for row in [header, *rows]) + "\n")


ARCH = NB201Arch((1, 2, 3, 4, 0, 1)).to_str()
ARCH2 = NB201Arch((0, 0, 0, 0, 0, 0)).to_str()


def test_nb201_small_valid_file(data_copy: Path) -> None:
    _write(data_copy / "help" / "nasbench201_latency_ms.csv", ["nb201_index", "arch_str", "cpu"],
           [[1, ARCH, 2.5], [0, ARCH2, 1.5]])
    ds = load_nb201()
    assert ds.archs == [ARCH2, ARCH]  # rows put in index order
    assert ds.y("cpu").tolist() == [1.5, 2.5]


@pytest.mark.parametrize("header, rows, match", [
    (["nb201_index", "cpu"], [[0, 1.0]], "lacks column.*arch_str"),
    (["nb201_index", "arch_str", "cpu"], [[0, ARCH, "nan"]], "column cpu has 1 NaN"),
    (["nb201_index", "arch_str", "cpu"], [[0, ARCH, -1.0]], "column cpu has 1 negative"),
    (["nb201_index", "arch_str", "cpu"], [[0, ARCH, "fast"]], "column cpu is not numeric"),
    (["nb201_index", "arch_str", "cpu"], [[0, ARCH, ""]], "column cpu is not numeric"),
    (["nb201_index", "arch_str", "cpu"], [[0, "|conv~0|", 1.0]], "column arch_str.*NAS-Bench-201 arch string"),
    (["nb201_index", "arch_str", "cpu"], [[0, ARCH, 1.0], [0, ARCH2, 1.0]], "nb201_index is not a permutation"),
    (["nb201_index", "arch_str"], [[0, ARCH]], "no device columns"),
])
def test_nb201_validation(data_copy: Path, header: list[str], rows: list[list[object]], match: str) -> None:
    path = data_copy / "help" / "nasbench201_latency_ms.csv"
    _write(path, header, rows)
    with pytest.raises(ConfigError, match=match) as info:
        load_nb201()
    assert str(path) in str(info.value)


def test_ragged_csv(data_copy: Path) -> None:
    path = data_copy / "help" / "fbnet_latency_ms.csv"
    path.write_text("op_idx_list,cpu\n" + " ".join(["0"] * 22) + ",1.0,7\n")
    with pytest.raises(ConfigError, match="do not have 2 fields"):
        load_fbnet()


def test_fbnet_validation(data_copy: Path) -> None:
    path = data_copy / "help" / "fbnet_latency_ms.csv"
    _write(path, ["op_idx_list", "L00", "cpu"], [[" ".join(["0"] * 22), "k3_e1", 1.0]])
    ds = load_fbnet()
    assert ds.devices == ["cpu"] and ds.X.shape == (1, 198)
    _write(path, ["op_idx_list", "cpu"], [["0 1 2", 1.0]])
    with pytest.raises(ConfigError, match="column op_idx_list.*FBNet arch string"):
        load_fbnet()


@needs_shared(HAT_XEON)
def test_hat_validation(data_copy: Path) -> None:
    target = data_copy / "hat" / "wmt14ende_cpu_xeon_all.csv"
    lines = HAT_XEON.read_text().splitlines()
    target.write_text("\n".join(lines[:5]) + "\n")
    assert load_hat("wmt14ende_cpu_xeon").X.shape == (4, 10)
    header = lines[0].split(",")
    bad = lines[1].split(",")
    bad[header.index("latency_mean_decoder")] = "-3"
    target.write_text("\n".join([lines[0], ",".join(bad)]) + "\n")
    with pytest.raises(ConfigError, match="latency_mean_decoder has 1 negative"):
        load_hat("wmt14ende_cpu_xeon")
    dropped = [i for i, c in enumerate(header) if c != FEATURES[3]]
    target.write_text("\n".join(",".join(line.split(",")[i] for i in dropped) for line in lines[:3]) + "\n")
    with pytest.raises(ConfigError, match=f"lacks column.*{FEATURES[3]}"):
        load_hat("wmt14ende_cpu_xeon")


def test_broken_embedding_file(data_copy: Path) -> None:
    path = data_copy / "help" / "hardware_embedding_index.json"
    path.write_text('{"fbnet": [1, 2]}')
    with pytest.raises(ConfigError, match="no valid index list under 'nasbench201'"):
        hardware_embedding_index("nb201")
    path.write_text('{"fbnet": [1, -2]}')
    with pytest.raises(ConfigError, match="non-negative"):
        hardware_embedding_index("fbnet")


def test_dataset_checks_lengths() -> None:
    with pytest.raises(ConfigError, match="2 archs"):
        LatencyDataset("t", "nb201", ["a", "b"], np.zeros((3, 30)), {"cpu": np.zeros(2)})


@needs_shared(EMBEDDING)
def test_copy_of_real_data_loads_through_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "help").mkdir()
    shutil.copy(EMBEDDING, tmp_path / "help")
    monkeypatch.setenv("TAILOR_SHARED_DATA", str(tmp_path))
    assert len(hardware_embedding_index("fbnet")) == 10
