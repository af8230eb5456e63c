"""Search benchmark → benchmarks/results/search.{md,json,png}.

Sections (``--sections speed,quality,closed``):

* **speed** — our evolution (whole generations evaluated as arrays) against a naive loop that evolves arch
  objects and calls the same predictor on one candidate at a time (how OFA's evolution finder runs), the same
  evaluation count, in one run. Predictor: the published OFA Note10 lookup tables (``../shared``), all five
  resolutions, OFA's evolution defaults under a hard latency cap (the constraint filter on in both).
* **quality** — best reward so far vs evaluations for evolution, RL and random, equal budgets, 5 seeds:
  (a) OFA-MBv3 with the digits supernet's accuracy predictor and the Note10 table, MnasNet soft reward;
  (b) NAS-Bench-201 latency-only against a real measured column (HELP, every arch measured), where the
  exhaustive optimum is known, reported as regret. A plot of both.
* **closed** — 10 searches at different targets on this machine's CPU table (the demo's w1.2 / 160 px table in
  ``tailor.db``, built if missing), calibrated against a speed reference as `tailor predictor calibrate` does;
  each winner is built and measured as `tailor search --device cpu` does (in alternation with the reference: this
  VM's speed moves within fractions of a second, see drift.md), in round-robin rounds, and compared with its
  prediction, read at the calibration's speed and plainly.

Usage: ``python benchmarks/search.py [--sections …] [--supernet CKPT] [--db URL]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _shared import calibrate_both_ways

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = Path(__import__("os").environ.get("TAILOR_SHARED_DATA", ROOT.parent / "shared" / "data"))
NOTE10 = SHARED / "ofa_proxyless_luts" / "note10"
SEEDS = (0, 1, 2, 3, 4)


def note10_predictor() -> Any:
    from tailorkit.core import LatencyTable
    from tailorkit.predictors import LutSumPredictor

    entries: dict[str, Any] = {}
    for r in (160, 176, 192, 208, 224):
        entries.update(LatencyTable.read(NOTE10 / f"{r}_lookup_table.yaml").entries)
    return LutSumPredictor(LatencyTable("note10", entries, space="ofa-mbv3"), device="note10")


def note10_target(space: Any, pred: Any) -> float:
    """40 % of the way from the smallest subnet (160 px) to the largest (224 px): a cap that rules out most
    of the space without being trivial."""
    small = pred.predict_archs(space, space.to_array([space.smallest(160)]))[0]
    large = pred.predict_archs(space, space.to_array([space.largest(224)]))[0]
    return float(small + 0.4 * (large - small))


# ------------------------------------------------------------------------------------------------- speed

def naive_evolution(space: Any, predictor: Any, target: float, evaluations: int, seed: int) -> tuple[float, int]:
    """OFA's evolution finder loop: arch objects, one predictor call per candidate (also inside the constraint
    filter), population 100, parent ratio 0.25, mutation ratio 0.5, prob 0.1: every generation the best 25 breed
    50 mutants and 50 crossovers."""
    rng = np.random.default_rng(seed)

    def lat(arch: Any) -> float:
        return float(predictor.predict_archs(space, space.to_array([arch]))[0])

    def feasible_sample(make: Any) -> tuple[Any, float]:
        while True:
            arch = make()
            latency = lat(arch)
            if latency <= target:
                return arch, latency

    resolutions = [160, 176, 192, 208, 224]

    def breed(i: int, parents: list[Any]) -> Any:
        """50 mutants, then 50 crossovers; a mutated resolution the table lacks is redrawn among its own."""
        if i >= 50:
            return space.crossover(parents[int(rng.integers(25))], parents[int(rng.integers(25))], rng)
        child = space.mutate(parents[int(rng.integers(25))], rng, 0.1)
        if child.r in resolutions:
            return child
        row = space.to_array([child])[0]
        row[45] = int(rng.choice(resolutions))
        return space.from_array(row[None])[0]

    pop, n = [], 0
    for _ in range(100):
        arch, latency = feasible_sample(lambda: space.sample(rng, int(rng.choice(resolutions))))
        pop.append((-latency, arch))  # reward: the soft reward's latency-only form ranks by latency
        n += 1
    while n < evaluations:
        pop.sort(key=lambda t: -t[0])
        parents = [a for _, a in pop[:25]]
        children = []
        for i in range(100):
            arch, latency = feasible_sample(lambda i=i, parents=parents: breed(i, parents))
            children.append((-latency, arch))
            n += 1
        pop = pop[:25] + children
    return max(r for r, _ in pop), n


def bench_speed(report: dict[str, Any]) -> None:
    from tailorkit.search.api import plan_search
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=1.2)
    pred = note10_predictor()
    target = note10_target(space, pred)
    n = 50_000

    def ours(budget: int, seed: int) -> Any:
        plan = plan_search("ofa-mbv3", width=1.2, target_ms=target, latency=pred, reward="mnasnet-hard",
                           strategy="evolution", budget=budget, seed=seed)
        plan.strategy.constraint = plan.evaluator.feasible  # OFA's filter, as in the naive loop
        return plan.run()[0]

    # one short run of each first: the table's per-resolution matrices and numpy's first calls are paid once
    # per process, by whichever loop runs first
    ours(2_000, 99)
    naive_evolution(space, pred, target, 2_000, 99)
    rows = []
    for seed in SEEDS:
        t = time.perf_counter()
        res = ours(n, seed)
        ours_total = time.perf_counter() - t
        t = time.perf_counter()
        _, n_naive = naive_evolution(space, pred, target, n, seed)
        naive = time.perf_counter() - t
        rows.append({"seed": seed, "ours_loop_s": res.seconds, "ours_total_s": ours_total, "naive_s": naive,
                     "evaluations": n, "naive_evaluations": n_naive, "speedup": naive / res.seconds})
        print(f"speed seed {seed}: ours {res.seconds:.2f} s loop ({ours_total:.2f} s with setup), naive "
              f"{naive:.1f} s → {naive / res.seconds:.0f}×", flush=True)
    report["speed"] = {"target_ms": target, "predictor": "OFA Note10 LUT, 5 resolutions", "runs": rows,
                       "ours_evals_per_s": n / np.mean([r["ours_loop_s"] for r in rows]),
                       "naive_evals_per_s": n / np.mean([r["naive_s"] for r in rows]),
                       "speedup_mean": float(np.mean([r["speedup"] for r in rows]))}


# ------------------------------------------------------------------------------------------------ quality

_ACCURACY: dict[str, Any] = {}


def accuracy_predictor(ckpt: Path | None, n: int) -> Any:
    if "pred" not in _ACCURACY:
        _ACCURACY["pred"] = _accuracy_predictor(ckpt, n)
    return _ACCURACY["pred"]


def _accuracy_predictor(ckpt: Path | None, n: int) -> Any:
    from tailorkit.search.accuracy import fit_accuracy_predictor, supernet_accuracies
    from tailorkit.search.supernet import SupernetConfig, load_digits_splits, load_supernet, train_supernet

    if ckpt is None:
        import tempfile

        ckpt = Path(tempfile.mkdtemp(prefix="tailor-bench-supernet-"))
        print("training a digits supernet (8 epochs) for the accuracy predictor …", flush=True)
        train_supernet(SupernetConfig(epochs=8), ckpt)
    net, _, _ = load_supernet(ckpt)
    t = time.perf_counter()
    archs, acc = supernet_accuracies(net, load_digits_splits(), n, seed=0)
    print(f"{len(archs)} subnets evaluated in {time.perf_counter() - t:.0f} s (val {acc.min():.3f}..{acc.max():.3f})",
          flush=True)
    return fit_accuracy_predictor(archs, acc, seed=0)


def quality_runs(space: str, budget: int, **kw: Any) -> dict[str, Any]:
    from tailorkit.search.api import search

    out: dict[str, Any] = {}
    for strategy in ("evolution", "rl", "random"):
        curves, best, secs = [], [], []
        for seed in SEEDS:
            res, hist = search(space, strategy=strategy, budget=budget, seed=seed, **kw)
            curves.append(hist.best_so_far())
            best.append(res.best)
            secs.append(res.seconds)
        c = np.array(curves)
        out[strategy] = {"curve_mean": c.mean(axis=0), "curve_std": c.std(axis=0),
                         "final_mean": float(c[:, -1].mean()), "final_std": float(c[:, -1].std()),
                         "best": best, "seconds_mean": float(np.mean(secs))}
        print(f"quality {space} {strategy}: final best reward {c[:, -1].mean():.5f} ± {c[:, -1].std():.5f}",
              flush=True)
    return out


def bench_quality(report: dict[str, Any], ckpt: Path | None, n_subnets: int) -> None:
    from tailorkit.predictors.datasets import load_nb201
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=1.2)
    pred = note10_predictor()
    acc = accuracy_predictor(ckpt, n_subnets)
    target = note10_target(space, pred)
    ofa = quality_runs("ofa-mbv3", 3000, width=1.2, target_ms=target, latency=pred, accuracy=acc,
                       reward="mnasnet-soft")
    device = "raspi4"  # measured to 0.01 ms (samsung_a50 and the pixels are whole milliseconds: ties)
    y = load_nb201().y(device)
    nb = quality_runs("nb201", 1000, target_ms=float(np.median(y)), latency=f"help:{device}",
                      reward="mnasnet-soft")
    # latency-only soft reward: (LAT/T)^-0.07 is maximal at the fastest arch; regret in ms against it
    t = float(np.median(y))
    for v in nb.values():
        v["final_latency_mean_ms"] = float(np.mean([b["latency_ms"] for b in v["best"]]))
        v["regret_ms"] = v["final_latency_mean_ms"] - float(y.min())
        v["found_optimum"] = int(sum(b["latency_ms"] == float(y.min()) for b in v["best"]))
    report["quality"] = {
        "ofa": {"target_ms": target, "budget": 3000, "latency": "Note10 LUT", "accuracy": "digits supernet MLP",
                **{k: _summary(v) for k, v in ofa.items()}},
        "nb201": {"device": device, "target_ms": t, "budget": 1000, "optimum_ms": float(y.min()),
                  **{k: _summary(v) for k, v in nb.items()}}}
    plot(ofa, nb, device)


def _summary(v: dict[str, Any]) -> dict[str, Any]:
    idx = np.unique(np.linspace(0, len(v["curve_mean"]) - 1, 50).round().astype(int))
    return {k: val for k, val in v.items() if k not in ("curve_mean", "curve_std", "best")} | {
        "curve": [[int(i + 1), float(v["curve_mean"][i]), float(v["curve_std"][i])] for i in idx],
        "best_archs": [b["arch"] for b in v["best"]]}


def plot(ofa: dict[str, Any], nb: dict[str, Any], device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, data, title in ((axes[0], ofa, "OFA-MBv3: digits accuracy × Note10 latency (soft reward)"),
                            (axes[1], nb, f"NAS-Bench-201 latency-only, measured {device}")):
        for name, v in data.items():
            x = np.arange(1, len(v["curve_mean"]) + 1)
            ax.plot(x, v["curve_mean"], label=name)
            ax.fill_between(x, v["curve_mean"] - v["curve_std"], v["curve_mean"] + v["curve_std"], alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best reward so far (mean ± std, 5 seeds)")
        ax.set_title(title, fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "search.png", dpi=110)


# ------------------------------------------------------------------------------------------------- closed

def bench_closed(report: dict[str, Any], db: str, rounds: int, ckpt: Path | None, n_subnets: int) -> None:
    from tailorkit.predictors import LutSumPredictor
    from tailorkit.profiler.api import build_table, measure_closed_loop
    from tailorkit.profiler.store import TableStore
    from tailorkit.search.api import fastest_reachable, search
    from tailorkit.search.genome import Genome
    from tailorkit.search.objectives import PredictorLatency
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=1.2)
    with TableStore(db) as store:  # resumes (or builds) the demo's table
        build_table("ofa-mbv3", "cpu", resolution=160, width=1.2, store=store)
        table = store.table("ofa-mbv3-w1.2-r160")
    raw = LutSumPredictor(table, device="cpu")
    acc = accuracy_predictor(ckpt, n_subnets)
    reference = space.smallest(160)
    # the product's workflow (`tailor predictor calibrate`): 8 whole subnets, each run in alternation with the
    # speed reference (the smallest subnet); the same runs give the plain calibration (each model's own median)
    pred, plain, _, sums, cal_measured, cal_plain = calibrate_both_ways(table, space, reference)
    ref_info = pred.reference_
    print(f"calibration: {pred.coef_[0]:.3f} × sum {pred.coef_[1]:+.3f} ms against the reference "
          f"({ref_info['ms']:.3f} ms, spread {100 * ref_info['spread']:.0f} %); plain {plain.coef_[0]:.3f} × sum "
          f"{plain.coef_[1]:+.3f} ms", flush=True)
    large = pred.predict_archs(space, space.to_array([space.largest(160)]))[0]
    genome = Genome(space, {45: [160]})
    fastest, _ = fastest_reachable(genome, PredictorLatency(space, pred))  # noisy tables: not always the smallest
    targets = np.linspace(fastest * 1.05, large * 0.95, 10)
    winners = []
    for i, t in enumerate(targets):
        res, _ = search("ofa-mbv3", width=1.2, target_ms=float(t), latency=pred, accuracy=acc, reward="cap",
                        strategy="evolution", budget=5000, seed=i)
        winners.append(res.best)
    win_archs = [space.arch_from_dict(b["arch"]) for b in winners]
    # `tailor search --device cpu`'s measurement, repeated in round-robin rounds to show how far apart two
    # measurements of the same winner land, plain and read at the calibration's speed
    own_ms, at_cal_ms, now_ms = (np.zeros((rounds, len(win_archs))) for _ in range(3))
    for r in range(rounds):
        for j, arch in enumerate(win_archs):
            m = measure_closed_loop(space.build(arch), space.input_shape(arch), "cpu", reference=ref_info)
            own_ms[r, j] = m.latency.median
            at_cal_ms[r, j] = m.reference["latency_ms"]
            now_ms[r, j] = m.reference["now_ms"]
        print(f"  round {r + 1}/{rounds}: own {np.round(own_ms[r], 3).tolist()}; at calibration speed "
              f"{np.round(at_cal_ms[r], 3).tolist()}", flush=True)
    as_array = space.to_array(win_archs)
    pred_ms = np.array([b["latency_ms"] for b in winners])
    plain_ms = plain.predict_archs(space, as_array)
    raw_ms = raw.predict_archs(space, as_array)

    def pct(p: np.ndarray, m: np.ndarray) -> np.ndarray:
        return 100 * (p - m) / m

    own_med, cal_med = np.median(own_ms, 0), np.median(at_cal_ms, 0)
    err_ref, err_plain, err_raw = pct(pred_ms, cal_med), pct(plain_ms, own_med), pct(raw_ms, own_med)
    err_ref_rounds = pct(pred_ms[None, :], at_cal_ms)
    rows = [{"target_ms": float(t), "predicted_ms": float(p), "predicted_plain_ms": float(pp),
             "table_sum_ms": float(s_), "measured_own_median_ms": float(o), "measured_at_calibration_ms": float(c),
             "error_pct": float(e), "error_plain_pct": float(ep), "error_table_sum_pct": float(er),
             "error_pct_rounds": er_r.tolist(), "arch": b["arch"]}
            for t, p, pp, s_, o, c, e, ep, er, er_r, b in zip(targets, pred_ms, plain_ms, raw_ms, own_med, cal_med,
                                                                err_ref, err_plain, err_raw, err_ref_rounds.T,
                                                                winners, strict=True)]

    def spread(x: np.ndarray) -> float:  # mean over winners of (slowest − fastest round) / fastest
        return float(100 * np.mean((x.max(0) - x.min(0)) / x.min(0)))

    report["closed"] = {
        "protocol": "speed reference", "table": "ofa-mbv3-w1.2-r160 (this machine, tailor.db)", "rounds": rounds,
        "runs": rows,
        "calibration": {"a": float(pred.coef_[0]), "b": float(pred.coef_[1]), "size_scale": pred.size_scale_,
                        "table_sums_ms": sums.tolist(),
                        "measured_at_reference_speed_ms": cal_measured.tolist(), "reference": ref_info,
                        "plain": {"a": float(plain.coef_[0]), "b": float(plain.coef_[1]),
                                  "measured_ms": cal_plain.tolist()}},
        "slowdown_during_winners": float(np.median(now_ms) / ref_info["ms"]),
        "slowdown_range": [float(now_ms.min() / ref_info["ms"]), float(now_ms.max() / ref_info["ms"])],
        "round_spread_own_pct": spread(own_ms), "round_spread_at_calibration_pct": spread(at_cal_ms),
        "mean_abs_error_pct": float(np.mean(np.abs(err_ref))), "within_5pct": int(np.sum(np.abs(err_ref) <= 5)),
        "within_5pct_every_round": int(np.sum(np.all(np.abs(err_ref_rounds) <= 5, axis=0))),
        "mean_abs_error_plain_pct": float(np.mean(np.abs(err_plain))),
        "within_5pct_plain": int(np.sum(np.abs(err_plain) <= 5)),
        "mean_abs_error_table_sum_pct": float(np.mean(np.abs(err_raw))),
        "within_5pct_table_sum": int(np.sum(np.abs(err_raw) <= 5)),
    }


# ----------------------------------------------------------------------------------------------- report

def write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    lines = ["# Search benchmark", "", f"Machine: {report['machine']}. Generated by `benchmarks/search.py`.", ""]
    if "speed" in report:
        s = report["speed"]
        lines += ["## Speed (OFA-MBv3, Note10 LUT, OFA evolution defaults, 50 000 evaluations)", "",
                  "| seed | ours: loop s | ours: with setup s | naive s | speed-up |", "|---|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['ours_loop_s']:.2f} | {r['ours_total_s']:.2f} | {r['naive_s']:.1f} | "
                  f"{r['speedup']:.0f}× |" for r in s["runs"]]
        lines += ["", f"Ours {s['ours_evals_per_s']:,.0f} evaluations/s, naive {s['naive_evals_per_s']:,.0f}/s: "
                      f"**{s['speedup_mean']:.0f}×** (goal ≥ 20×; 50 000 evaluations < 2 s).", ""]
    if "quality" in report:
        q = report["quality"]
        lines += ["## Quality (5 seeds, equal budgets; plot: search.png)", "",
                  f"OFA-MBv3, soft reward, T = {q['ofa']['target_ms']:.2f} ms (Note10), {q['ofa']['budget']} "
                  "evaluations, accuracy from the digits supernet's predictor:", "",
                  "| strategy | final best reward | s per search |", "|---|---|---|"]
        lines += [f"| {k} | {q['ofa'][k]['final_mean']:.5f} ± {q['ofa'][k]['final_std']:.5f} | "
                  f"{q['ofa'][k]['seconds_mean']:.2f} |" for k in ("evolution", "rl", "random")]
        nb = q["nb201"]
        lines += ["", f"NAS-Bench-201 latency-only on measured {nb['device']} (HELP), {nb['budget']} evaluations; "
                      f"the exhaustive optimum is {nb['optimum_ms']:.4f} ms:", "",
                  "| strategy | final best reward | mean latency found ms | regret ms | seeds at the optimum |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k} | {nb[k]['final_mean']:.5f} ± {nb[k]['final_std']:.5f} | "
                  f"{nb[k]['final_latency_mean_ms']:.4f} | {nb[k]['regret_ms']:.4f} | {nb[k]['found_optimum']}/5 |"
                  for k in ("evolution", "rl", "random")]
        lines.append("")
    if report.get("closed", {}).get("protocol") == "speed reference":
        c = report["closed"]
        cal, ref = c["calibration"], c["calibration"]["reference"]
        lines += ["## Closed loop (CPU, 10 targets, winners measured end to end)", "",
                  "The product's path: `tailor predictor calibrate` measured 8 subnets, each in alternation with "
                  f"the speed reference (the smallest subnet, {ref['ms']:.3f} ms over the calibration, spread "
                  f"{100 * ref['spread']:.0f} %) and fitted {cal['a']:.3f} × sum {cal['b']:+.3f} ms on ratio × "
                  f"{ref['ms']:.3f} ms"
                  + (" (the entries of each output size scaled first: " + ", ".join(
                      f"{g} ×{m:.3f}" for g, m in sorted(cal["size_scale"].items()) if abs(m - 1) > 5e-4) + ")"
                     if cal.get("size_scale") else "")
                  + ". Ten cap searches (5 000 evaluations, digits accuracy predictor) then each "
                  "winner measured as `tailor search --device cpu` does: in alternation with the reference, "
                  f"{c['rounds']} round-robin rounds, median. The reference ran {c['slowdown_during_winners']:.2f}× "
                  f"its calibration time while the winners were measured (range {c['slowdown_range'][0]:.2f}–"
                  f"{c['slowdown_range'][1]:.2f}×).", "",
                  "| target ms | predicted ms | at calibration speed ms | error | error per round | own latency ms "
                  "| plain calibration: predicted ms | its error |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['target_ms']:.3f} | {r['predicted_ms']:.3f} | {r['measured_at_calibration_ms']:.3f} | "
                  f"{r['error_pct']:+.1f} % | {', '.join(f'{e:+.1f}' for e in r['error_pct_rounds'])} | "
                  f"{r['measured_own_median_ms']:.3f} | {r['predicted_plain_ms']:.3f} | {r['error_plain_pct']:+.1f} % |"
                  for r in c["runs"]]
        lines += ["", f"Read at the calibration's speed: mean |error| **{c['mean_abs_error_pct']:.1f} %, within 5 %: "
                      f"{c['within_5pct']}/10** ({c['within_5pct_every_round']}/10 in every round). "
                      f"The same winner's rounds differ by {c['round_spread_at_calibration_pct']:.1f} % read at the "
                      f"calibration's speed and by {c['round_spread_own_pct']:.1f} % in their own latency. Plain "
                      f"(each model's own median, plain calibration {cal['plain']['a']:.3f} × sum "
                      f"{cal['plain']['b']:+.3f} ms): mean |error| {c['mean_abs_error_plain_pct']:.1f} %, within 5 %: "
                      f"{c['within_5pct_plain']}/10; uncalibrated table sums "
                      f"{c['mean_abs_error_table_sum_pct']:.1f} %, "
                      f"{c['within_5pct_table_sum']}/10 (goal: all within 5 %).", ""]
    (RESULTS / "search.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="speed,quality,closed")
    ap.add_argument("--supernet", type=Path, default=None, help="trained ofa-mbv3 digits supernet checkpoint")
    ap.add_argument("--subnets", type=int, default=100, help="subnets evaluated for the accuracy predictor")
    ap.add_argument("--db", default="sqlite:///tailor.db")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    if sections & {"speed", "quality"} and not NOTE10.exists():
        sys.exit(f"error: the speed and quality sections need ../shared data ({NOTE10} is absent)")
    previous = RESULTS / "search.json"
    report: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    cores = __import__("os").cpu_count()
    report["machine"] = f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"
    if "speed" in sections:
        bench_speed(report)
        write(report)
    if "quality" in sections:
        bench_quality(report, args.supernet, args.subnets)
        write(report)
    if "closed" in sections:
        bench_closed(report, args.db, args.rounds, args.supernet, args.subnets)
        write(report)
    print((RESULTS / "search.md").read_text())


if __name__ == "__main__":
    main()
