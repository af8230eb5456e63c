from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tailorkit.core import Latency, LatencyTable, PredictorError
from tailorkit.predictors import LutSumPredictor, evaluate, load_predictor
from tailorkit.spaces import OFAMobileNetV3Space

from .conftest import NOTE10, needs_shared


def _table(space: OFAMobileNetV3Space, resolution: int, seed: int = 0) -> LatencyTable:
    rng = np.random.default_rng(seed)
    return LatencyTable("t", {op.key: Latency(mean=float(rng.uniform(0.1, 2.0)), std=0.0, n=1)
                              for op in space.all_ops(resolution)}, space="ofa-mbv3")


def test_lut_sum_equals_the_sum_of_entries_for_every_path() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    table = _table(space, 160)
    predictor = LutSumPredictor(table)
    rng = np.random.default_rng(1)
    archs = [space.sample(rng, resolution=160) for _ in range(50)]
    expected = np.array([sum(table[op.key].mean for op in space.ops(a)) for a in archs])
    array = space.to_array(archs)
    np.testing.assert_allclose(predictor.predict_archs(space, array), expected)
    np.testing.assert_allclose(predictor.predict(space.op_counts(array, predictor.keys_)), expected)


def test_correction_fits_a_systematic_gap() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    predictor = LutSumPredictor(_table(space, 128))
    rng = np.random.default_rng(2)
    array = space.to_array([space.sample(rng, resolution=128) for _ in range(8)])
    counts = space.op_counts(array, predictor.keys_)
    measured = 1.3 * (counts @ predictor.latency_) + 0.4  # whole models run 30 % slower plus a fixed cost
    predictor.fit(counts, measured)
    np.testing.assert_allclose(predictor.coef_, [1.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(predictor.predict_archs(space, array), measured, rtol=1e-6)


def test_size_groups_follow_a_gap_that_depends_on_feature_map_size(tmp_path: Path) -> None:
    """Whole models whose ops cost more inside the network the larger their feature maps: one line cannot follow
    that, the size multipliers can (fitted on 12 models, judged on 40 others)."""
    from tailorkit.predictors.lut import size_group

    space = OFAMobileNetV3Space(width=1.0)
    table = _table(space, 160)
    rng = np.random.default_rng(3)
    archs = space.to_array([space.sample(rng, resolution=160) for _ in range(52)])
    gap = {"80x80": 1.35, "40x40": 1.2, "20x20": 1.1}  # the rest: 1.0
    probe = LutSumPredictor(table)
    per_op = probe.latency_ * np.array([gap.get(size_group(k), 1.0) for k in probe.keys_])
    counts = space.op_counts(archs, probe.keys_)
    measured = 1.05 * (counts @ per_op) + 0.2
    errors = {}
    for by_size in (True, False):
        predictor = LutSumPredictor(table, by_size=by_size).fit(counts[:12], measured[:12])
        errors[by_size] = np.abs(predictor.predict_archs(space, archs[12:]) / measured[12:] - 1)
        np.testing.assert_allclose(predictor.predict(counts[12:]), predictor.predict_archs(space, archs[12:]))
    assert errors[True].max() < 0.01 < errors[False].max() and errors[True].mean() < errors[False].mean() / 3
    fitted = LutSumPredictor(table).fit(counts[:12], measured[:12])
    # ordered as the gap (80×80 holds only the first block, which every subnet has: no multiplier to learn)
    assert fitted.size_scale_["40x40"] > fitted.size_scale_["20x20"] > fitted.size_scale_["10x10"]
    assert fitted.table_[probe.keys_[0]] == pytest.approx(probe.latency_[0] * fitted.scale_for(probe.keys_[:1])[0])
    loaded = load_predictor(fitted.save(tmp_path / "s.tlp"))
    assert loaded.size_scale_ == fitted.size_scale_
    np.testing.assert_allclose(loaded.predict_archs(space, archs), fitted.predict_archs(space, archs))
    # three models pin no size groups: the plain line
    few = LutSumPredictor(table).fit(counts[:3], measured[:3])
    assert few.size_scale_ == {} and size_group("Logits-input:1x1x1280-output:10") == "other"


def test_missing_op_names_the_op() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    table = _table(space, 128)
    missing_key = next(op.key for op in space.ops(space.largest(128)) if op.op_type == "expanded_conv"
                       and op.kernel == 7 and op.stride == 1)
    partial = LatencyTable("t", {k: v for k, v in table.entries.items() if k != missing_key})
    with pytest.raises(PredictorError, match="no latency for op 'expanded_conv-input"):
        LutSumPredictor(partial).predict_archs(space, space.to_array([space.largest(128)]))
    with pytest.raises(PredictorError, match="no latency for op"):  # another resolution than the table's
        LutSumPredictor(table).predict_archs(space, space.to_array([space.largest(160)]))


def test_save_load_round_trip_and_corruption(tmp_path: Path) -> None:
    space = OFAMobileNetV3Space(width=1.0)
    predictor = LutSumPredictor(_table(space, 128), device="cpu")
    path = predictor.save(tmp_path / "p.tlp")
    loaded = load_predictor(path, space="ofa-mbv3")
    assert isinstance(loaded, LutSumPredictor) and loaded.keys_ == predictor.keys_
    array = space.to_array([space.largest(128), space.smallest(128)])
    np.testing.assert_array_equal(loaded.predict_archs(space, array), predictor.predict_archs(space, array))
    with pytest.raises(PredictorError, match="trained for space 'ofa-mbv3', not 'nb201'"):
        load_predictor(path, space="nb201")

    truncated = tmp_path / "truncated.tlp"
    truncated.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(PredictorError, match="corrupt or truncated"):
        load_predictor(truncated)
    tampered = tmp_path / "tampered.tlp"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "arrays/latency.npy":
                data = data[:-8] + np.float64(99.0).tobytes()
            dst.writestr(item, data)
    with pytest.raises(PredictorError, match="checksum mismatch"):
        load_predictor(tampered)
    (tmp_path / "junk.tlp").write_text("not a zip")
    with pytest.raises(PredictorError, match="not a readable predictor"):
        load_predictor(tmp_path / "junk.tlp")


def test_wrong_encoding_length_and_bad_latencies() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    predictor = LutSumPredictor(_table(space, 128))
    with pytest.raises(PredictorError, match="encoding of length 5"):
        predictor.predict(np.ones((2, 5)))
    counts = np.ones((2, len(predictor.keys_)))
    for bad in ([1.0, np.nan], [1.0, -2.0]):
        with pytest.raises(PredictorError, match="NaN, infinite, zero or negative"):
            predictor.fit(counts, bad)


@needs_shared(NOTE10)
def test_note10_table_predicts_ofa_subnets() -> None:
    space = OFAMobileNetV3Space(width=1.2)
    table = LatencyTable.read(NOTE10 / "224_lookup_table.yaml")
    predictor = LutSumPredictor(table)
    largest = predictor.predict_archs(space, space.to_array([space.largest(224)]))[0]
    smallest = predictor.predict_archs(space, space.to_array([space.smallest(224)]))[0]
    assert largest == pytest.approx(sum(table[op.key].mean for op in space.ops(space.largest(224))))
    assert 0 < smallest < largest


def test_metrics() -> None:
    m = evaluate(np.array([10.0, 20.0, 30.0, 40.0]), np.array([10.4, 21.5, 36.0, 40.0]))
    assert m["acc5"] == 50.0 and m["acc10"] == 75.0
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(np.sqrt((0.16 + 2.25 + 36) / 4))
    with pytest.raises(PredictorError):
        evaluate(np.array([1.0, 0.0]), np.array([1.0, 1.0]))


def test_correction_ignores_an_interrupted_run() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    predictor = LutSumPredictor(_table(space, 128))
    rng = np.random.default_rng(4)
    array = space.to_array([space.sample(rng, resolution=128) for _ in range(10)])
    counts = space.op_counts(array, predictor.keys_)
    measured = 1.2 * (counts @ predictor.latency_)
    measured[3] *= 2.5  # one whole-model run hit by preemption
    predictor.fit(counts, measured)
    assert predictor.coef_[0] == pytest.approx(1.2, rel=0.02) and abs(predictor.coef_[1]) < 0.5


def test_calibration_rounds_are_interleaved_and_a_slow_episode_does_not_tilt_the_line() -> None:
    from tailorkit.predictors.lut import calibration_archs, measure_and_correct

    space = OFAMobileNetV3Space(width=1.0)
    predictor = LutSumPredictor(_table(space, 128))
    archs = calibration_archs(space, predictor, 6, seed=0)
    truth = {id(a): 1.25 * float(predictor.predict_archs(space, space.to_array([a]))[0]) + 0.3 for a in archs}
    calls: list[int] = []

    def measure(arch: object) -> float:
        calls.append(id(arch))
        slow = 6 <= len(calls) <= 9  # the machine slows down for four measurements in a row
        return truth[id(arch)] * (1.8 if slow else 1.0)

    sums, measured = measure_and_correct(predictor, space, archs, measure, rounds=3)
    assert calls == [id(a) for a in archs] * 3  # round-robin, not arch by arch
    np.testing.assert_allclose(measured, [truth[id(a)] for a in archs])
    np.testing.assert_allclose(predictor.coef_, [1.25, 0.3], rtol=1e-6)
    with pytest.raises(Exception, match="at least 1 round"):
        measure_and_correct(predictor, space, archs, measure, rounds=0)


def test_table_sums_refuse_arrays_outside_the_space() -> None:
    space = OFAMobileNetV3Space(width=1.0)
    predictor = LutSumPredictor(_table(space, 128))
    good = space.to_array([space.smallest(128)])
    np.testing.assert_allclose(predictor.predict_archs(space, good),
                               [sum(predictor._lookup[op.key] for op in space.ops(space.smallest(128)))])
    for column, value, what in ((0, 4, "kernels"), (0, -3, "kernels"), (0, 11, "kernels"), (25, 5, "expands"),
                                (41, 5, "depths"), (41, -1, "depths")):
        bad = good.copy()
        bad[0, column] = value
        with pytest.raises(PredictorError, match=what):
            predictor.predict_archs(space, bad)
    for r in (130, 96, 300):
        bad = good.copy()
        bad[0, 45] = r
        with pytest.raises(PredictorError, match=f"resolutions are 128..224 step 4, got {r}"):
            predictor.predict_archs(space, bad)
    assert predictor.predict_archs(space, good[:0]).shape == (0,)
