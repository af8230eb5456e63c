"""Latency-predictor benchmark on public measurements (../shared/data) and on this machine's CPU.

Sections (each in one run, on the same splits for every method compared):

* **HAT protocol** — each of HAT's 7 tables; a random shuffle then an 80/10/10 split per seed; HAT's own MLP
  and training recipe (``MLPPredictor.hat_preset``: lr 1e-5, 5000 steps, batch 128) against ours (ridge on
  HAT's features plus decoder totals), both trained on the same 80 %; RMSE (ms) and MAPD (%) on the test rows,
  mean ± std over seeds.
* **NAS-Bench-201 and FBNet** — every device column; per seed, 900 random archs train and all others test;
  ±10 % accuracy and Spearman ρ (mean ± std over seeds) of two baselines (a linear fit on op counts, the
  FLOPs/params proxy; scikit-learn's HistGradientBoostingRegressor on the one-hot encoding with a log target) and
  ours; ours again trained on the first 900 table rows (one stretch of the measurement campaign). For NB201, each
  device's noise reference and drift (``nb201_noise``): where the device's own measurements keep a predictor
  below 95 %.
* **Few-shot** — HELP's protocol and device split (meta-train on the training pool of the meta-train devices;
  adapt on 5 / 10 / 20 archs of each meta-test device: the first 5 / all 10 reference archs of
  ``hardware_embedding_index.json`` / those plus 10 pool archs; query = the next 1000 indices without the
  reference archs, top and bottom 10 % of latencies dropped); mean Spearman ρ; and as a reference, the same
  linear model fitted on every pool arch of the meta-test device itself.
* **Throughput** — predictions per second for a batch of 100 000 archs.
* **Our CPU** (``--cpu-subnets N``) — LUT-sum from a table measured here vs the end-to-end latency of N random
  OFA-MBv3 subnets measured here; error distribution and ±10 % accuracy, with and without the linear
  correction (fitted on 10 of the subnets, evaluated on the rest). Then the kernel-level predictor, which never
  sees an op of that table: fitted on tables at other resolutions, on one table only, and on one table plus a
  budget of single ops chosen by adaptive sampling or at random from the same candidate pool.

Writes ``benchmarks/results/predictors.{json,md}`` (``--quick``: ``predictors.quick.*``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from tailorkit.core.records import BenchmarkSettings
from tailorkit.predictors import (
    FewShotPredictor,
    GBMPredictor,
    KernelPredictor,
    LutSumPredictor,
    MLPPredictor,
    evaluate,
)
from tailorkit.predictors.datasets import (
    HELP_SPLITS,
    LatencyDataset,
    hardware_embedding_index,
    hat_files,
    load_fbnet,
    load_hat,
    load_nb201,
)
from tailorkit.predictors.model import HAT_LATENCY_NORM, AdditivePredictor, RidgePredictor, fit_best, model_candidates
from tailorkit.spaces.nb201 import live_op_counts

RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger("bench")

# HELP's FBNet tables have no 256-batch GPU columns; the 64-batch ones take their place.
# HELP's published 10-shot Spearman ρ per meta-test device (NB201: the paper's Table 3; FBNet: Table 2).
HELP_PUBLISHED = {
    "nb201": {"titan_rtx_256": 0.987, "gold_6226": 0.989, "fpga": 0.985, "pixel2": 0.802, "raspi4": 0.890,
              "eyeriss": 0.940, "mean": 0.932},
    "fbnet": {"fpga": 0.892, "raspi4": 0.887, "eyeriss": 0.943, "mean": 0.910},
}
# FBNet devices HELP does not meta-test on (the rest of its NB201 test set): reported apart, outside the mean
FBNET_EXTRA_TEST = ("titan_rtx_64", "gold_6226", "pixel2")


def fit_ours(space: str, X: np.ndarray, y: np.ndarray) -> Any:
    """Our model-level predictor for a tabular space: of :func:`model_candidates` (additive models on op counts,
    their products, FBNet's per-layer choices; gradient boosting), the most accurate on a held-out fifth of the
    training rows."""
    return fit_best(model_candidates(space), X, y)


# --------------------------------------------------------------------------------------------------- HAT


def bench_hat(seeds: list[int], quick: bool) -> dict[str, Any]:
    rows = {}
    for name in hat_files()[: 2 if quick else None]:
        data = load_hat(name)
        y = data.y("latency")
        norm = next(v for k, v in HAT_LATENCY_NORM.items() if k in name)
        results: dict[str, list[tuple[float, float]]] = {"hat": [], "ours": []}
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(y))
            n_train, n_valid = int(0.8 * len(y)), int(0.1 * len(y))
            test = order[n_train + n_valid:]
            hat = MLPPredictor.hat_preset(latency_norm=norm, seed=seed, steps=500 if quick else 5000)
            mine = RidgePredictor(features="hat", seed=seed)
            for label, model in (("hat", hat), ("ours", mine)):
                model.fit(data.X[order[:n_train]], y[order[:n_train]])  # both on the same 80 %
                m = evaluate(y[test], model.predict(data.X[test]))
                results[label].append((m["rmse"], m["mape"]))
        rows[name] = {label: {"rmse": _ms(v, 0), "mapd": _ms(v, 1)} for label, v in results.items()}
        log.info("HAT %s: hat rmse %.2f, ours %.2f", name, rows[name]["hat"]["rmse"][0], rows[name]["ours"]["rmse"][0])
    return rows


def _ms(values: list[tuple[float, float]], i: int) -> tuple[float, float]:
    return _mean_std([v[i] for v in values])


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.array(values)
    return float(a.mean()), float(a.std())


# ------------------------------------------------------------------------------------------ NB201 / FBNet


def op_counts(data: LatencyDataset) -> np.ndarray:
    group = 5 if data.space == "nb201" else 9
    return data.X.reshape(len(data), -1, group).sum(axis=1)


def bench_tabular(data: LatencyDataset, seeds: list[int], quick: bool) -> dict[str, Any]:
    """Per device and seed: a random 900 archs train, all others test (the same split for every method). Ours is
    also fitted on the first 900 table rows, the order the devices were measured in, to show what drift does."""
    counts = op_counts(data)
    live = live_op_counts(data.X) if data.space == "nb201" else None  # the same for every device
    design = np.c_[np.ones(len(counts)), counts]
    splits = [np.random.default_rng(seed).permutation(len(data)) for seed in seeds]
    rows = {}
    for device in data.devices[: 4 if quick else None]:
        y = data.y(device)
        runs: dict[str, list[dict[str, float]]] = {"linear-counts": [], "hist-gbm": [], "ours": []}
        for order in splits:
            train, test = order[:900], order[900:]
            coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
            hgb = HistGradientBoostingRegressor(random_state=0).fit(data.X[train], np.log(y[train]))
            runs["linear-counts"].append(_acc(y[test], np.maximum(design[test] @ coef, 1e-6)))
            runs["hist-gbm"].append(_acc(y[test], np.exp(hgb.predict(data.X[test]))))
            runs["ours"].append(_acc(y[test], fit_ours(data.space, data.X[train], y[train]).predict(data.X[test])))
        first, rest = np.arange(900), np.arange(900, len(data))
        rows[device] = {m: {k: _mean_std([v[k] for v in vs]) for k in ("acc10", "spearman")}
                        for m, vs in runs.items()}
        rows[device]["ours-first-900"] = _acc(y[rest], fit_ours(data.space, data.X[first], y[first]).predict(
            data.X[rest]))
        if data.space == "nb201":
            rows[device]["noise"] = nb201_noise(counts, live, y)
        log.info("%s %s: hgb %.1f %%, ours %.1f %%", data.space, device, rows[device]["hist-gbm"]["acc10"][0],
                 rows[device]["ours"]["acc10"][0])
    return rows


def nb201_noise(counts: np.ndarray, live: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """How far the device's own measurements let a predictor go. Archs with the same op counts run the same
    kernels on the same shapes (every NB201 edge maps a cell's shape to itself), so they differ only by
    measurement noise, unless the runtime drops dead edges (``live_op_counts``), where archs with the same op
    counts *and* live op counts do. ``reference_acc10``: ±10 % accuracy of a predictor that, for each arch, knows
    the latencies of all *other* archs of its group in the whole table (about 74 per op count, against the 4
    that 900 training archs give) and answers with the better of two constants — their median, or the value
    within ±10 % of the most of them — under the better of the two groupings (``reference_grouping``).
    ``drift_pct``: spread of the median ratio to the op-count group medians across the ten consecutive tenths of
    the table (the order the archs were measured in): how far the device's speed moved during the campaign."""
    by_grouping = {"op counts": _group_reference(counts, y),
                   "op counts + live op counts": _group_reference(np.c_[counts, live], y)}
    grouping = max(by_grouping, key=lambda g: max(by_grouping[g][0].values()))
    hits, ratio = by_grouping[grouping][0], by_grouping["op counts"][1]
    tenths = [np.nanmedian(part) for part in np.array_split(ratio, 10)]
    return {"reference_acc10": max(hits.values()), "reference_grouping": grouping,
            **{f"reference_{name}_acc10": acc for name, acc in hits.items()},
            "drift_pct": float((max(tenths) / min(tenths) - 1) * 100)}


def _group_reference(keys: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Leave-one-out ±10 % accuracy (%) of the group's median and of its best constant, over archs grouped by
    equal ``keys`` rows; and each arch's ratio to its group's median."""
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    hits = {"median": np.zeros(len(y), dtype=bool), "mode": np.zeros(len(y), dtype=bool)}
    judged = np.zeros(len(y), dtype=bool)  # the few archs alone in their group have no others to compare with
    ratio = np.full(len(y), np.nan)
    for g in range(group.max() + 1):
        idx = np.flatnonzero(group == g)
        if len(idx) < 2:
            continue
        vals = y[idx]
        others = ~np.eye(len(idx), dtype=bool)  # row k: every arch of the group but the k-th
        hits["median"][idx] = np.abs([np.median(vals[o]) for o in others] - vals) <= 0.10 * vals
        # p is within ±10 % of y exactly when 0.9 y ≤ p ≤ 1.1 y: the best constant is the point most of these
        # intervals cover, taken in the middle of its stretch
        low, high = 0.9 * vals, 1.1 * vals
        points = np.concatenate([low, high])
        covers = (low[None, :] <= points[:, None]) & (points[:, None] <= high[None, :])  # point × arch
        for k in range(len(idx)):
            count = covers[:, others[k]].sum(axis=1)
            at = points[int(np.argmax(count))]
            inside = others[k] & (low <= at) & (at <= high)
            p = 0.5 * (low[inside].max() + high[inside].min())
            hits["mode"][idx[k]] = abs(p - vals[k]) <= 0.10 * vals[k]
        judged[idx] = True
        ratio[idx] = vals / np.median(vals)
    return {name: float(h[judged].mean() * 100) for name, h in hits.items()}, ratio


def _acc(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = evaluate(y, p)
    return {"acc10": m["acc10"], "spearman": m["spearman"]}


# -------------------------------------------------------------------------------------------- few-shot


def bench_fewshot(data: LatencyDataset, splits: Mapping[str, Sequence[str]], pool: int, preset: dict[str, Any],
                  extra_devices: Sequence[str] = ()) -> dict[str, Any]:
    """Spearman ρ per device, the mean over ``splits["test"]`` (HELP's protocol); ``extra_devices`` are
    evaluated the same way and reported outside the mean."""
    ref = hardware_embedding_index(data.space)
    pool_rows = np.arange(pool)
    predictor = FewShotPredictor(**preset).meta_fit(data.X[pool_rows],
                                                    {d: data.y(d)[pool_rows] for d in splits["train"]})
    extra = [i for i in np.random.default_rng(0).permutation(pool) if i not in set(ref)][:10]
    shots = {5: ref[:5], 10: ref, 20: list(ref) + extra}
    out: dict[str, Any] = {}
    for k, rows in shots.items():
        per_device = {}
        for device in (*splits["test"], *extra_devices):
            y = data.y(device)
            query = _fewshot_query(y, pool, ref)
            predictor.fit(data.X[rows], y[rows])
            per_device[device] = evaluate(y[query], predictor.predict(data.X[query]))["spearman"]
        out[str(k)] = {"per_device": per_device, "mean": _mean_over(per_device, splits["test"])}
    # Reference: the same linear model fitted by least squares on all pool archs *of the test device itself*;
    # what its own noise leaves reachable on this query set with far more than 20 measurements.
    per_device = {}
    phi = np.c_[np.ones(len(data)), predictor._features(data.X)]
    for device in (*splits["test"], *extra_devices):
        y = data.y(device)
        query = _fewshot_query(y, pool, ref)
        coef, *_ = np.linalg.lstsq(phi[pool_rows], y[pool_rows], rcond=None)
        per_device[device] = evaluate(y[query], phi[query] @ coef)["spearman"]
    out[f"all {pool}"] = {"per_device": per_device, "mean": _mean_over(per_device, splits["test"])}
    return out


def _mean_over(per_device: Mapping[str, float], devices: Sequence[str]) -> float:
    return float(np.mean([per_device[d] for d in devices]))


def _fewshot_query(y: np.ndarray, pool: int, ref: list[int]) -> np.ndarray:
    """HELP's query archs: the 1000 after the pool, less the reference archs, top and bottom 10 % dropped."""
    query = np.setdiff1d(np.arange(pool, min(pool + 1000, len(y))), ref)
    order = np.argsort(y[query], kind="stable")
    return query[order[len(query) // 10: len(query) * 9 // 10]]


# ------------------------------------------------------------------------------------------ throughput


def bench_throughput(nb201: LatencyDataset) -> dict[str, float]:
    from tailorkit.core.table import LatencyTable
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=1.0)
    rng = np.random.default_rng(0)
    from tailorkit.core.records import Latency

    table = LatencyTable("t", {op.key: Latency(mean=float(rng.uniform(0.1, 2)), std=0.0, n=1)
                               for op in space.all_ops(160)})
    lut = LutSumPredictor(table)
    archs = space.to_array([space.sample(rng, resolution=160) for _ in range(1000)])
    batch = np.tile(archs, (100, 1))
    out = {"lut": _rate(lambda: lut.predict_archs(space, batch), len(batch))}
    kernel = KernelPredictor().fit_table(table)
    out["kernel"] = _rate(lambda: kernel.predict_archs(space, batch), len(batch))
    y = nb201.y("1080ti_1")
    X = np.tile(nb201.X, (7, 1))[:100_000]
    out["gbm"] = _rate(GBMPredictor().fit(nb201.X[:900], y[:900]).predict, len(X), X)
    out["mlp"] = _rate(MLPPredictor(steps=300).fit(nb201.X[:900], y[:900]).predict, len(X), X)
    out["additive"] = _rate(AdditivePredictor(group=5).fit(nb201.X[:900], y[:900]).predict, len(X), X)
    live = AdditivePredictor(group=5, extra="nb201-live").fit(nb201.X[:900], y[:900])
    out["additive (live edges)"] = _rate(live.predict, len(X), X)
    preset = FewShotPredictor(group=5).meta_fit(nb201.X[:900], {d: nb201.y(d)[:900] for d in nb201.devices[:4]})
    out["fewshot"] = _rate(preset.fit(nb201.X[:10], y[:10]).predict, len(X), X)
    return out


def _rate(fn: Callable[..., Any], n: int, *args: Any) -> float:
    fn(*args)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return n / best


# -------------------------------------------------------------------------------------------- our CPU


def bench_cpu(n_subnets: int, resolution: int, other_resolutions: list[int], sample_rounds: int,
              per_round: int) -> dict[str, Any]:
    """Everything measured in this one run, on the same quiet machine: tables, sampled ops, subnets."""
    from tailorkit.devices.onnxruntime import OnnxRuntimeDevice
    from tailorkit.predictors.kernel import adaptive_sample, encode_ops, perturbed_ops, store_measurer, table_rows
    from tailorkit.profiler.api import build_table, profile
    from tailorkit.profiler.store import TableStore
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=1.0)
    settings = BenchmarkSettings()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng, resolution=resolution) for _ in range(n_subnets)]
    array = space.to_array(archs)
    with tempfile.TemporaryDirectory() as tmp, TableStore(f"sqlite:///{tmp}/t.db") as store:
        report = build_table("ofa-mbv3", "cpu", resolution=resolution, store=store, settings=settings)
        table = store.table(report.table)
        others = {r: store.table(build_table("ofa-mbv3", "cpu", resolution=r, store=store, settings=settings).table)
                  for r in other_resolutions}
        # adaptive vs random sampling, same budget, same candidate pool: ops around the largest resolution's
        # at other input sizes and widths (never exactly the evaluation resolution's ops)
        seed_res = max(other_resolutions)
        seeds = space.all_ops(seed_res)
        pool = perturbed_ops(seeds, np.random.default_rng(1), 1500)
        pool = [op for op in pool if op.key not in table.entries]
        start = {k: v.mean for k, v in others[seed_res].entries.items()}
        budget = sample_rounds * per_round
        sampled: dict[str, Any] = {}
        with OnnxRuntimeDevice() as device:
            for how in ("adaptive", "random"):
                measure = store_measurer(device, store, f"samples-{how}", settings)
                predictor = KernelPredictor()
                t0 = time.perf_counter()
                if how == "adaptive":
                    history = adaptive_sample(predictor, pool, measure, rounds=sample_rounds, per_round=per_round,
                                              initial=start)
                else:
                    picked = [pool[i] for i in np.random.default_rng(2).permutation(len(pool))[:budget]]
                    extra = measure(picked)
                    ops, y = table_rows(others[seed_res])
                    predictor.fit(encode_ops(ops + picked), np.concatenate([y, [extra[o.key] for o in picked]]))
                    history = []
                sampled[how] = {"predictor": predictor, "wall_s": time.perf_counter() - t0,
                                "history": [h.__dict__ for h in history]}
        measured = []
        for i, arch in enumerate(archs):
            result = profile(space.build(arch), "cpu", settings=settings, input_shapes={"": space.input_shape(arch)})
            measured.append(result.latency.median)
            if (i + 1) % 10 == 0:
                log.info("measured %d/%d subnets", i + 1, n_subnets)
    y = np.array(measured)
    lut = LutSumPredictor(table)
    raw = lut.predict_archs(space, array)
    n_fit = min(10, n_subnets // 2)
    fit_rows, eval_rows = np.arange(n_fit), np.arange(n_fit, n_subnets)
    lut.fit(space.op_counts(array[fit_rows], lut.keys_), y[fit_rows])
    corrected = lut.predict_archs(space, array)
    rel_raw = (raw - y) / y * 100
    table_ops, table_ms = table_rows(table)

    def kernel_result(predictor: KernelPredictor, note: str, n_ops: int) -> dict[str, Any]:
        pred = predictor.predict_archs(space, array)
        rel = (pred - y) / y * 100
        per_op = evaluate(table_ms, predictor.predict_ops(table_ops))
        return {**evaluate(y, pred), "error_pct_p10_p50_p90": np.percentile(rel, [10, 50, 90]).tolist(),
                "ops_trained": n_ops, "note": note,
                "per_op_vs_table": {k: per_op[k] for k in ("acc10", "mape", "spearman")}}

    kernels = {
        "kernel, tables at " + "/".join(map(str, other_resolutions)): kernel_result(
            KernelPredictor().fit_table(list(others.values())), "interpolates to a resolution it never saw",
            sum(map(len, others.values()))),
        f"kernel, table at {seed_res} only": kernel_result(
            KernelPredictor().fit_table(others[seed_res]), "extrapolates from one resolution", len(others[seed_res])),
    }
    for how, v in sampled.items():
        kernels[f"kernel, {seed_res} + {budget} {how} ops"] = {
            **kernel_result(v["predictor"], f"{how} sampling, {v['wall_s']:.0f} s incl. measuring",
                            sum(v["predictor"].n_train_.values())), "rounds": v["history"]}
    return {
        "resolution": resolution, "subnets": n_subnets, "table_build_s": report.wall_s,
        "measured_ms": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())},
        "lut_sum": {**evaluate(y, raw), "error_pct_p10_p50_p90": np.percentile(rel_raw, [10, 50, 90]).tolist()},
        "lut_sum_corrected": {**evaluate(y[eval_rows], corrected[eval_rows]), "coef": lut.coef_.tolist(),
                              "fit_on": n_fit},
        "kernel": kernels,
    }


# ------------------------------------------------------------------------------------------------ report


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Latency predictors", "", f"{r['machine']}, {r['date']}", ""]
    dates = r.get("section_dates", {})
    if len(set(dates.values())) > 1:
        lines += ["Sections measured at different times: " + ", ".join(f"{k} {v}" for k, v in dates.items()), ""]
    if r.get("hat"):
        seeds = ", ".join(map(str, r["seeds"]))
        lines += [f"## HAT protocol (RMSE ms / MAPD %, mean ± std over seeds {seeds})", "",
                  "| file | HAT MLP RMSE | ours (ridge + decoder totals) RMSE | HAT MAPD | ours MAPD | ours better |",
                  "|---|---|---|---|---|---|"]
        for name, v in r["hat"].items():
            h, o = v["hat"], v["ours"]
            better = "yes" if o["rmse"][0] < h["rmse"][0] else "NO"
            lines.append(f"| {name} | {h['rmse'][0]:.2f} ± {h['rmse'][1]:.2f} | {o['rmse'][0]:.2f} ± "
                         f"{o['rmse'][1]:.2f} | {h['mapd'][0]:.2f} | {o['mapd'][0]:.2f} | {better} |")
        lines.append("")
    for space in ("nb201", "fbnet"):
        if space in r:
            lines += _tabular_markdown(space, r[space], r["seeds"])
    for space in ("fewshot_nb201", "fewshot_fbnet"):
        if space in r:
            lines += _fewshot_markdown(space.split("_")[1], r[space])
    if "throughput" in r:
        lines += ["## Throughput (predictions/s, batch of 100 000)", "",
                  "| " + " | ".join(r["throughput"]) + " |", "|" + "---|" * len(r["throughput"]),
                  "| " + " | ".join(f"{v:,.0f}" for v in r["throughput"].values()) + " |", ""]
    if "cpu" in r:
        c = r["cpu"]
        lines += [f"## Our CPU: LUT-sum vs {c['subnets']} measured OFA-MBv3 subnets at {c['resolution']}", "",
                  f"- measured median latency {c['measured_ms']['median']:.2f} ms "
                  f"({c['measured_ms']['min']:.2f}–{c['measured_ms']['max']:.2f})",
                  f"- LUT sum: ±10 % {c['lut_sum']['acc10']:.1f} %, MAPE {c['lut_sum']['mape']:.1f} %, "
                  f"ρ {c['lut_sum']['spearman']:.3f}, error p10/p50/p90 "
                  + " / ".join(f"{e:+.1f} %" for e in c["lut_sum"]["error_pct_p10_p50_p90"]),
                  f"- with the linear correction fitted on {c['lut_sum_corrected'].get('fit_on', 10)} subnets: "
                  f"±10 % {c['lut_sum_corrected']['acc10']:.1f} %, "
                  f"MAPE {c['lut_sum_corrected']['mape']:.1f} %", ""]
        if c.get("kernel"):
            lines += [f"Kernel-level predictor (no op of the {c['resolution']} table in its training data): "
                      "Σ of predicted op latencies vs the measured subnets, and per op vs the measured table", "",
                      "| trained on | ops | subnets ±10 % | MAPE | ρ | error p10/p50/p90 | per-op ±10 % | per-op MAPE "
                      "| note |", "|---|---|---|---|---|---|---|---|---|"]
            for name, k in c["kernel"].items():
                lines.append(f"| {name} | {k['ops_trained']} | {k['acc10']:.1f} % | {k['mape']:.1f} % | "
                             f"{k['spearman']:.3f} | " + " / ".join(f"{e:+.1f}" for e in k["error_pct_p10_p50_p90"])
                             + f" % | {k['per_op_vs_table']['acc10']:.1f} % | {k['per_op_vs_table']['mape']:.1f} % "
                             f"| {k['note']} |")
            lines.append("")
    return "\n".join(lines)


def _fewshot_markdown(space: str, res: Mapping[str, Any]) -> list[str]:
    published = HELP_PUBLISHED[space]
    devices = list(res["10"]["per_device"])
    helps = [d for d in devices if d in published]
    outside = [d for d in devices if d not in published]
    head = [*helps, "mean", *(f"{d} (not in HELP's split)" for d in outside)]
    lines = [f"## Few-shot ({space}, HELP's split): Spearman ρ, mean over HELP's meta-test devices", "",
             "| shots | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]

    def row(label: str, values: Mapping[str, float], mean: float) -> str:
        cells = [f"{values[d]:.3f}" if d in values else "—" for d in (*helps, "mean", *outside)]
        cells[len(helps)] = f"**{mean:.3f}**"
        return f"| {label} | " + " | ".join(cells) + " |"

    for k, v in res.items():
        label = f"{k.split()[1]} of the device's own archs (reference)" if k.startswith("all ") else k
        lines.append(row(label, v["per_device"], v["mean"]))
    lines.append(row("HELP, 10 (published)", published, published["mean"]))
    lines += ["", "Reference: the same linear model fitted by least squares on every pool arch of the meta-test "
              "device itself, on the same query archs: what the device's own noise leaves reachable."]
    if outside:
        lines += ["Devices after the mean are outside HELP's split for this space (they are its NB201 test "
                  "devices): evaluated the same way, not averaged."]
    return [*lines, ""]


def _tabular_markdown(space: str, rows: dict[str, Any], seeds: list[int]) -> list[str]:
    methods = ("linear-counts", "hist-gbm", "ours")
    noise = space == "nb201"
    lines = [f"## {space}: 900 random training archs, all others test; ±10 % accuracy / Spearman ρ, mean ± std over "
             f"seeds {', '.join(map(str, seeds))}", "",
             "| device | linear on op counts | HistGBM (one-hot, log) | ours | ours, first 900 rows |"
             + (" reference (~74 archs per group) | drift |" if noise else ""),
             "|---|---|---|---|---|" + ("---|---|" if noise else "")]
    for device, v in rows.items():
        cells = [f"{v[m]['acc10'][0]:.1f} ± {v[m]['acc10'][1]:.1f} / {v[m]['spearman'][0]:.3f}" for m in methods]
        cells.append(f"{v['ours-first-900']['acc10']:.1f} / {v['ours-first-900']['spearman']:.3f}")
        if noise:
            live = "live" in v["noise"].get("reference_grouping", "")
            cells += [f"{v['noise']['reference_acc10']:.1f}{' ᴸ' if live else ''}", f"{v['noise']['drift_pct']:.0f} %"]
        lines.append(f"| {device} | " + " | ".join(cells) + " |")
    means = [np.mean([v[m]["acc10"][0] for v in rows.values()]) for m in methods]
    means.append(np.mean([v["ours-first-900"]["acc10"] for v in rows.values()]))
    if noise:
        means.append(np.mean([v["noise"]["reference_acc10"] for v in rows.values()]))
    lines += ["| **mean** | " + " | ".join(f"**{m:.1f}**" for m in means) + (" |  |" if noise else " |"), ""]
    if noise:
        capped = [d for d, v in rows.items() if max(v["noise"]["reference_acc10"], v["ours"]["acc10"][0]) < 95]
        short = [d for d, v in rows.items() if v["noise"]["reference_acc10"] >= 95 > v["ours"]["acc10"][0]]
        lines += ["Reference: for each arch, the latencies of all *other* archs with the same op counts in the whole "
                  "table (they run the same kernels on the same shapes, so they differ only by measurement noise; "
                  "ᴸ: grouped also by the op counts on live edges, where that scores higher: the device's runtime "
                  "drops edges whose result never reaches the cell output), answered with the better of two "
                  "constants, their median or the value within ±10 % of the most of them: what a predictor with "
                  "tens of training archs per group (~74 per op count), not ~4, would reach. Drift: spread "
                  "of the ratio to those group medians across the ten consecutive tenths of the table, the order "
                  "the archs were measured in; the first-900-rows column shows what it does to a predictor trained "
                  "on one stretch of the campaign.", "",
                  "- below 95 % for the reference and for ours (the device's own noise): "
                  + (", ".join(capped) or "none"),
                  f"- reference ≥ 95 % but ours below 95 %: {', '.join(short) or 'none'}"]
        if all("reference_mode_acc10" in v["noise"] for v in rows.values()):
            variant = {k: np.mean([v["noise"][f"reference_{k}_acc10"] for v in rows.values()]) for k in
                       ("median", "mode")}
            lines.append(f"- the reference's two constants alone, mean over devices: the group median "
                         f"{variant['median']:.1f} %, the value most of the group lies within ±10 % of "
                         f"{variant['mode']:.1f} % (it picks that value knowing those archs' latencies)")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few devices/files, short training: smoke test")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cpu-subnets", type=int, default=100, help="0 skips the CPU section")
    parser.add_argument("--cpu-resolution", type=int, default=160)
    parser.add_argument("--skip", nargs="*", default=[], choices=["hat", "tabular", "fewshot", "throughput", "cpu"])
    parser.add_argument("--stem", default=None, help="results file name [predictors, or predictors.quick]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stderr)
    import onnxruntime
    import torch

    from tailorkit.devices.host import cpu_model

    seeds = list(range(1 if args.quick else args.seeds))
    r: dict[str, Any] = {
        "machine": f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
                   f"onnxruntime {onnxruntime.__version__}",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "seeds": seeds, "quick": args.quick,
    }
    t0 = time.perf_counter()
    stem = args.stem or ("predictors.quick" if args.quick else "predictors")
    sections = {"hat": ["hat"], "tabular": ["nb201", "fbnet"], "fewshot": ["fewshot_nb201", "fewshot_fbnet"],
                "throughput": ["throughput"], "cpu": ["cpu"]}
    previous = RESULTS / f"{stem}.json"
    if args.skip and previous.exists():
        # a partial rerun keeps the sections it skips from the last run; each section says when it was measured
        old = json.loads(previous.read_text())
        r = {**{k: v for k, v in old.items() if k not in ("date", "wall_s")}, **r}
        # results from before the dates were kept carry their run's date
        r["section_dates"] = {**{k: old["date"] for keys in sections.values() for k in keys if k in old},
                              **old.get("section_dates", {})}
    r["section_dates"] = {**r.get("section_dates", {}),
                          **{key: r["date"] for name, keys in sections.items() if name not in args.skip
                             for key in keys}}

    def save() -> str:
        """After every section: a crash or a kill later keeps what was measured so far."""
        r["wall_s"] = time.perf_counter() - t0
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{stem}.json").write_text(json.dumps(r, indent=1))
        text = markdown(r)
        (RESULTS / f"{stem}.md").write_text(text + "\n")
        return text

    nb201, fbnet = load_nb201(), load_fbnet()
    if "hat" not in args.skip:
        r["hat"] = bench_hat(seeds, args.quick)
        save()
    if "tabular" not in args.skip:
        r["nb201"] = bench_tabular(nb201, seeds, args.quick)
        r["fbnet"] = bench_tabular(fbnet, seeds, args.quick)
        save()
    if "fewshot" not in args.skip:
        r["fewshot_nb201"] = bench_fewshot(nb201, HELP_SPLITS["nb201"], 900, {"group": 5, "tau": 0.01})
        r["fewshot_fbnet"] = bench_fewshot(fbnet, HELP_SPLITS["fbnet"], 4000, {"tau": 0.0}, FBNET_EXTRA_TEST)
        save()
    if "throughput" not in args.skip:
        r["throughput"] = bench_throughput(nb201)
        save()
    if "cpu" not in args.skip and args.cpu_subnets > 0:
        r["cpu"] = bench_cpu(10 if args.quick else args.cpu_subnets, args.cpu_resolution,
                             [128, 224] if args.quick else [128, 192, 224], 1 if args.quick else 4,
                             8 if args.quick else 16)
    text = save()
    print(text)


if __name__ == "__main__":
    main()
