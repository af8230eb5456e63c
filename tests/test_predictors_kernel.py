from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tailorkit.core import BenchmarkSettings, Latency, LatencyTable, OpSpec, PredictorError
from tailorkit.predictors import KernelPredictor, LutSumPredictor, load_predictor
from tailorkit.predictors.kernel import (
    COLUMNS,
    adaptive_sample,
    encode_ops,
    op_costs,
    perturbed_ops,
    store_measurer,
)
from tailorkit.spaces import OFAMobileNetV3Space

SPACE = OFAMobileNetV3Space(width=1.0)


def _physics(ops: list[OpSpec]) -> np.ndarray:
    """A made-up device whose ops cost a fixed overhead plus time per MAC kind and per element moved."""
    c = op_costs(encode_ops(ops))
    return 0.01 + 2e-8 * c[:, 1] + 3e-8 * c[:, 2] + 1.5e-7 * c[:, 3] + 1e-7 * c[:, 4] + 4e-8 * c[:, 5]


def _table(resolutions: list[int], space: OFAMobileNetV3Space = SPACE) -> LatencyTable:
    ops = list({op.key: op for r in resolutions for op in space.all_ops(r)}.values())
    y = _physics(ops)
    return LatencyTable("t", {op.key: Latency(mean=float(v), std=0.0, n=1) for op, v in zip(ops, y, strict=True)},
                        space="ofa-mbv3")


def test_encoding_and_costs_of_an_mbconv_block() -> None:
    op = OpSpec("expanded_conv", (56, 56, 24), (28, 28, 40), kernel=5, stride=2, expand=144, se=True,
                activation="relu")
    x = encode_ops([op])
    assert x.shape == (1, len(COLUMNS))
    cost = dict(zip(("one", "mac_1x1", "mac_kxk", "mac_dw", "mac_se", "act", "weights"), op_costs(x)[0],
                    strict=False))
    assert cost["mac_1x1"] == 56 * 56 * 24 * 144 + 28 * 28 * 144 * 40  # expand + project
    assert cost["mac_dw"] == 28 * 28 * 144 * 25
    assert cost["mac_kxk"] == 0
    assert cost["mac_se"] > 0
    # the first OFA block has no expand conv (mid == input width): its 1×1 work is the projection only
    first = OpSpec("expanded_conv", (80, 80, 16), (80, 80, 16), kernel=3, stride=1, expand=16, idskip=True,
                   activation="relu")
    assert op_costs(encode_ops([first]))[0, 1] == 80 * 80 * 16 * 16


def test_learns_a_cost_model_and_predicts_unmeasured_resolutions() -> None:
    predictor = KernelPredictor(bags=4).fit_table(_table([128, 160, 224]))
    held_out = [op for op in SPACE.all_ops(192)]
    truth = _physics(held_out)
    pred = predictor.predict_ops(held_out)
    assert np.median(np.abs(pred / truth - 1)) < 0.03
    # whole networks: Σ over their ops, at a resolution no table holds
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng, resolution=192) for _ in range(20)]
    nets = predictor.predict_archs(SPACE, SPACE.to_array(archs))
    np.testing.assert_array_equal(predictor.predict_archs(SPACE, SPACE.to_array(archs)), nets)  # cached lookup
    refit = KernelPredictor(bags=1).fit_table(_table([128]))
    assert not np.allclose(refit.predict_archs(SPACE, SPACE.to_array(archs)), nets)
    expected = np.array([_physics(SPACE.ops(a)).sum() for a in archs])
    assert np.max(np.abs(nets / expected - 1)) < 0.05
    np.testing.assert_allclose(nets[0], predictor.predict_ops(SPACE.ops(archs[0])).sum(), rtol=1e-9)


def test_uncertainty_is_larger_away_from_the_training_ops() -> None:
    predictor = KernelPredictor(bags=8).fit_table(_table([128, 132, 136]))
    near = encode_ops(SPACE.all_ops(132))
    far = encode_ops([op for op in perturbed_ops(SPACE.all_ops(224), np.random.default_rng(0), 200,
                                                 spatial=(1.5, 2.0), channels=(2.0,))])
    assert predictor.uncertainty(far).mean() > 2 * predictor.uncertainty(near).mean()


def test_save_load_round_trip_and_corrupt_files(tmp_path: Path) -> None:
    predictor = KernelPredictor(bags=3, seed=4, device="cpu").fit_table(_table([128, 224]))
    x = encode_ops(SPACE.all_ops(176))
    path = predictor.save(tmp_path / "k.tlp")
    loaded = load_predictor(path)
    assert isinstance(loaded, KernelPredictor)
    np.testing.assert_array_equal(loaded.predict(x), predictor.predict(x))
    np.testing.assert_array_equal(loaded.uncertainty(x), predictor.uncertainty(x))
    assert loaded.n_train_ == predictor.n_train_
    data = path.read_bytes()
    (tmp_path / "trunc.tlp").write_bytes(data[: len(data) // 2])
    with pytest.raises(PredictorError, match="corrupt or truncated"):
        load_predictor(tmp_path / "trunc.tlp")
    with zipfile.ZipFile(path) as zf, zipfile.ZipFile(tmp_path / "bad.tlp", "w") as out:
        for item in zf.infolist():
            payload = zf.read(item)
            out.writestr(item, payload + b"x" if item.filename.startswith("blobs/") else payload)
    with pytest.raises(PredictorError, match="checksum"):
        load_predictor(tmp_path / "bad.tlp")


def test_bad_input_is_a_clear_error() -> None:
    predictor = KernelPredictor(bags=1).fit_table(_table([128]))
    with pytest.raises(PredictorError, match="length 5, but this predictor was trained on length 14"):
        predictor.predict(np.ones((2, 5)))
    bad_type = encode_ops(SPACE.all_ops(128)[:2])
    bad_type[0, 0] = 99
    with pytest.raises(PredictorError, match="op_type"):
        predictor.predict(bad_type)
    with pytest.raises(PredictorError, match="no cost model for op type 'Dense'"):
        encode_ops([OpSpec("Dense", (1, 1, 64), (10,))])
    only_blocks = KernelPredictor(bags=1).fit(encode_ops(SPACE.all_ops(128)[1:5]), np.ones(4))
    with pytest.raises(PredictorError, match="no Logits ops were in the training data"):
        only_blocks.predict_ops(SPACE.all_ops(128)[-1:])
    with pytest.raises(PredictorError, match="NaN"):
        KernelPredictor().fit(encode_ops(SPACE.all_ops(128)[:2]), [1.0, float("nan")])


def test_perturbed_ops_are_valid_distinct_ops_of_the_same_kinds() -> None:
    seeds = SPACE.all_ops(160)
    out = perturbed_ops(seeds, np.random.default_rng(3), 150)
    assert 100 <= len(out) <= 150
    assert len({op.key for op in out}) == len(out)
    assert {op.op_type for op in out} <= {op.op_type for op in seeds}
    for op in out:
        assert OpSpec.from_key(op.key) == op  # canonical and self-consistent (stride maps the shapes)
    assert any(op.input_shape[0] not in {s.input_shape[0] for s in seeds} for op in out)
    pools = [op for op in out if op.op_type == "AvgPool2D"]
    assert pools and all(op.output_shape[:2] == (1, 1) and op.output_shape[2] == op.input_shape[2] for op in pools)
    for op in out:
        if op.op_type == "expanded_conv" and op.idskip:
            assert op.input_shape == op.output_shape


def test_adaptive_sampling_measures_what_the_bag_disagrees_on() -> None:
    calls: list[list[str]] = []

    def measure(ops: list[OpSpec]) -> dict[str, float]:
        calls.append([op.key for op in ops])
        return dict(zip((op.key for op in ops), _physics(ops).tolist(), strict=True))

    start = _table([128])
    candidates = perturbed_ops(SPACE.all_ops(176), np.random.default_rng(0), 300)
    predictor = KernelPredictor(bags=6)
    history = adaptive_sample(predictor, candidates, measure, rounds=3, per_round=10,
                              initial={k: v.mean for k, v in start.entries.items()})
    assert [h.measured for h in history] == [len(start) + 10 * i for i in (1, 2, 3)]
    measured = [k for call in calls for k in call]
    assert len(measured) == len(set(measured)) == 30  # never the same op twice, never an initial op
    assert not set(measured) & set(start.entries)
    assert all(h.picked_uncertainty >= h.mean_uncertainty for h in history)
    assert sum(predictor.n_train_.values()) == len(start) + 30  # ends fitted on everything measured
    with pytest.raises(PredictorError, match="initial_random"):
        adaptive_sample(KernelPredictor(), candidates, measure, rounds=1, per_round=1)


def test_lut_interpolation_fills_only_missing_ops(tmp_path: Path) -> None:
    full = _table([160])
    missing = [op.key for op in SPACE.all_ops(160) if op.op_type == "expanded_conv" and op.kernel == 7][:3]
    table = LatencyTable("t", {k: v for k, v in full.entries.items() if k not in missing}, space="ofa-mbv3")
    arch = SPACE.largest(160)
    array = SPACE.to_array([arch])
    with pytest.raises(PredictorError, match="no latency for op"):
        LutSumPredictor(table).predict_archs(SPACE, array)
    filled = LutSumPredictor(table, interpolate=True)
    got = filled.predict_archs(SPACE, array)[0]
    assert got == pytest.approx(_physics(SPACE.ops(arch)).sum(), rel=0.03)
    # measured entries are used as measured: a table with all ops gives the plain sum
    exact = LutSumPredictor(full, interpolate=True).predict_archs(SPACE, array)[0]
    assert exact == pytest.approx(sum(full[op.key].mean for op in SPACE.ops(arch)), rel=1e-12)
    # another resolution entirely comes from the kernel model
    assert LutSumPredictor(table, interpolate=True).predict_archs(SPACE, SPACE.to_array([SPACE.largest(176)]))[0] \
        == pytest.approx(_physics(SPACE.ops(SPACE.largest(176))).sum(), rel=0.05)
    loaded = load_predictor(filled.save(tmp_path / "lut.tlp"))
    assert loaded.predict_archs(SPACE, array)[0] == got


def test_store_measurer_profiles_single_ops_into_a_table(tmp_path: Path) -> None:
    from tailorkit.devices.onnxruntime import OnnxRuntimeDevice
    from tailorkit.profiler.store import TableStore

    ops = [OpSpec("conv", (16, 16, 8), (16, 16, 16), kernel=3, activation="relu"),
           OpSpec("expanded_conv", (16, 16, 16), (8, 8, 24), kernel=3, stride=2, expand=48, activation="relu")]
    settings = BenchmarkSettings(warmup=2, runs=5, threads=1)
    with TableStore(f"sqlite:///{tmp_path}/s.db") as store, OnnxRuntimeDevice() as device:
        measure = store_measurer(device, store, "samples", settings)
        got = measure(ops)
        assert set(got) == {op.key for op in ops} and all(v > 0 for v in got.values())
        again = measure(ops)  # already measured: read back, not run again
        assert again == got
        assert store.count("samples") == 2
