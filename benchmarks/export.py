"""Export benchmark → benchmarks/results/export.md|json.

Sections:
- ``formats``: for three OFA-MBv3 subnets (width 1.2, 160 px) with digits-supernet weights: export time, file size,
  digits test accuracy in the runtime and top-1 agreement with torch, for ONNX and TFLite, float32 and int8; the
  latency of each file measured in its own runtime (ONNX Runtime for .onnx, LiteRT for .tflite; 1 thread).
- ``simplify``: onnxsim against onnxslim on the same subnets: seconds, node counts, and ORT latency of the result
  (interleaved rounds), which is how the default simplifier was chosen.
- ``closed``: measured vs predicted latency of exported ONNX files on the CPU: the lookup table of this machine
  (``tailor.db``, built or resumed), calibrated against a speed reference as `tailor predictor calibrate` does,
  predicts each subnet; each file is exported and measured as `tailor export --device cpu` does (in alternation
  with the reference), then measured again in round-robin rounds. Goal: within 5 %.

Usage: ``python benchmarks/export.py [--sections …] [--supernet CKPT (ofa-mbv3 width 1.2)] [--db URL]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _shared import calibrate_both_ways

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH, R = 1.2, 160


def subnets() -> list[Any]:
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=WIDTH)
    rng = np.random.default_rng(7)
    return [space.smallest(R), space.sample(rng, R), space.largest(R)]


def supernet(ckpt: Path | None) -> Path:
    from tailorkit.search.supernet import SupernetConfig, train_supernet

    if ckpt is not None:
        return ckpt
    ckpt = Path(tempfile.mkdtemp(prefix="tailor-bench-export-sn-"))
    print("training a width-1.2 digits supernet (4 epochs) …", flush=True)
    train_supernet(SupernetConfig(epochs=4, width=WIDTH), ckpt)
    return ckpt


def bench_formats(report: dict[str, Any], ckpt: Path) -> None:
    from tailorkit.search.specialize import ExportOptions, export_arch
    from tailorkit.search.supernet import load_digits_splits
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=WIDTH)
    data = load_digits_splits()
    rows = []
    work = Path(tempfile.mkdtemp(prefix="tailor-bench-export-"))
    for i, arch in enumerate(subnets()):
        for fmt, quantize, device in (("onnx", None, "cpu"), ("onnx", "int8", "cpu"), ("tflite", None, "litert"),
                                      ("tflite", "int8", "litert")):
            start = time.perf_counter()
            m = export_arch(space, arch, work / f"{i}-{fmt}-{quantize}", ExportOptions(
                fmt=fmt, quantize=quantize, supernet=ckpt, min_agreement=0.0), source={"kind": "arch"}, data=data)
            seconds = time.perf_counter() - start
            from tailorkit.profiler.api import profile

            lat = profile(work / f"{i}-{fmt}-{quantize}" / m.model_file(), device,
                          input_shapes={"input": tuple(m.input["shape"])}).latency
            rows.append({"subnet": i, "format": fmt, "quantize": quantize or "float32", "export_s": seconds,
                         "bytes": m.files[0]["bytes"], "acc_torch": m.accuracy["torch"],
                         "acc_runtime": m.accuracy["runtime"], "agreement": m.verify["top1_agreement"],
                         "max_abs_diff": m.verify["max_abs_diff"], "device": device, "latency_ms": lat.median})
            print(f"subnet {i} {fmt} {quantize or 'float32'}: {seconds:.1f} s, {rows[-1]['bytes'] / 1e6:.2f} MB, "
                  f"acc {m.accuracy['runtime']:.4f} (torch {m.accuracy['torch']:.4f}), {lat.median:.3f} ms on "
                  f"{device}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    report["formats"] = {"rows": rows}


def bench_simplify(report: dict[str, Any], rounds: int) -> None:
    import torch

    from tailorkit.export.onnx import OnnxExporter, simplify_onnx
    from tailorkit.profiler.api import profile
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=WIDTH)
    work = Path(tempfile.mkdtemp(prefix="tailor-bench-simplify-"))
    rows = []
    for i, arch in enumerate(subnets()):
        shape = space.input_shape(arch)
        paths = {}
        for tool in ("none", "onnxsim", "onnxslim"):
            path = work / f"{i}-{tool}.onnx"
            OnnxExporter().export(space.build(arch), torch.randn(*shape), path, dynamic_spatial=True)
            paths[tool] = path
            if tool != "none":
                s = simplify_onnx(path, tool)
                rows.append({"subnet": i, "tool": tool, "seconds": s.seconds, "nodes_before": s.nodes_before,
                             "nodes_after": s.nodes_after})
        lat = {tool: [] for tool in paths}
        for _ in range(rounds):
            for tool, path in paths.items():
                lat[tool].append(profile(path, "cpu", input_shapes={"input": shape}).latency.median)
        for row in rows:
            if row["subnet"] == i:
                row["latency_ms"] = float(np.median(lat[row["tool"]]))
                row["latency_unsimplified_ms"] = float(np.median(lat["none"]))
        print(f"subnet {i}: " + ", ".join(f"{t} {np.median(v):.3f} ms" for t, v in lat.items()), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    report["simplify"] = {"rows": rows, "rounds": rounds}


def bench_closed(report: dict[str, Any], ckpt: Path, db: str, rounds: int, cal_rounds: int = 3) -> None:
    from tailorkit.predictors import LutSumPredictor
    from tailorkit.profiler.api import build_table, measure_closed_loop
    from tailorkit.profiler.store import TableStore
    from tailorkit.search.specialize import ExportOptions, export_arch
    from tailorkit.search.supernet import load_digits_splits
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=WIDTH)
    with TableStore(db) as store:
        build_table("ofa-mbv3", "cpu", resolution=R, width=WIDTH, store=store)
        table = store.table(f"ofa-mbv3-w{WIDTH:g}-r{R}")
    raw = LutSumPredictor(table, device="cpu")
    # the exported models end in the digits head, which the table build measured besides the space's 1000-class
    # one: calibrated (`tailor predictor calibrate --classes 10`) and predicted with it, as `tailor export` does
    digits = space.with_classes(10)
    reference = space.smallest(R)
    pred, plain, cal_archs, *_ = calibrate_both_ways(table, digits, reference, rounds=cal_rounds)
    ref_info = pred.reference_
    rng = np.random.default_rng(11)
    archs = subnets() + [space.sample(rng, R) for _ in range(5)]
    as_array = space.to_array(archs)
    predicted, plain_ms, sums = (p.predict_archs(digits, as_array) for p in (pred, plain, raw))
    work = Path(tempfile.mkdtemp(prefix="tailor-bench-closed-"))
    data = load_digits_splits()
    files, at_cal, own_ms, now = [], np.zeros((rounds, len(archs))), np.zeros((rounds, len(archs))), \
        np.zeros((rounds, len(archs)))
    # round 1 is `tailor export --device cpu --predictor cal.tlp`: the manifest's own measurement
    for j, arch in enumerate(archs):
        m = export_arch(space, arch, work / str(j), ExportOptions(supernet=ckpt, device="cpu"),
                        source={"kind": "arch"}, data=data,
                        predicted={"latency_ms": float(predicted[j]), "source": "bench", "device": "cpu",
                                   "reference": ref_info})
        files.append(work / str(j) / m.model_file())
        ref = m.measured["speed_reference"]
        at_cal[0, j], own_ms[0, j], now[0, j] = ref["latency_ms"], m.measured["latency_ms"]["median"], ref["now_ms"]
    # further rounds measure the same files again, round-robin, the same way
    for r in range(1, rounds):
        for j, arch in enumerate(archs):
            m = measure_closed_loop(files[j], space.input_shape(arch), "cpu", reference=ref_info)
            at_cal[r, j], own_ms[r, j], now[r, j] = m.reference["latency_ms"], m.latency.median, m.reference["now_ms"]
        print(f"round {r + 1}/{rounds}: at calibration speed {np.round(at_cal[r], 3).tolist()}", flush=True)
    shutil.rmtree(work, ignore_errors=True)

    def pct(p: np.ndarray, m: np.ndarray) -> np.ndarray:
        return 100 * (p - m) / m

    cal_med, own_med = np.median(at_cal, 0), np.median(own_ms, 0)
    err, err_rounds = pct(predicted, cal_med), pct(predicted[None, :], at_cal)
    err_plain, err_sum = pct(plain_ms, own_med), pct(sums, own_med)
    in_cal = {json.dumps(space.arch_to_dict(a), sort_keys=True) for a in cal_archs}
    rows = [{"predicted_ms": float(p), "measured_at_calibration_ms": float(c), "error_pct": float(e),
             "error_pct_rounds": er.tolist(), "measured_own_median_ms": float(o), "predicted_plain_ms": float(pp),
             "error_plain_pct": float(ep), "table_sum_ms": float(s_), "error_table_sum_pct": float(es),
             "in_calibration": json.dumps(space.arch_to_dict(a), sort_keys=True) in in_cal,
             "arch": space.arch_to_dict(a)}
            for p, c, e, er, o, pp, ep, s_, es, a in zip(predicted, cal_med, err, err_rounds.T, own_med, plain_ms,
                                                          err_plain, sums, err_sum, archs, strict=True)]

    def spread(x: np.ndarray) -> float:
        return float(100 * np.mean((x.max(0) - x.min(0)) / x.min(0)))

    report["closed"] = {
        "protocol": "speed reference", "table": f"ofa-mbv3-w{WIDTH:g}-r{R} (this machine, {db})", "rounds": rounds,
        "calibration_rounds": cal_rounds,
        "rows": rows, "calibration": {"a": float(pred.coef_[0]), "b": float(pred.coef_[1]), "reference": ref_info,
                                      "size_scale": pred.size_scale_,
                                      "plain": {"a": float(plain.coef_[0]), "b": float(plain.coef_[1])}},
        "slowdown_range": [float(now.min() / ref_info["ms"]), float(now.max() / ref_info["ms"])],
        "round_spread_own_pct": spread(own_ms), "round_spread_at_calibration_pct": spread(at_cal),
        "mean_abs_error_pct": float(np.abs(err).mean()), "within_5pct": int((np.abs(err) <= 5).sum()),
        "within_5pct_every_round": int(np.all(np.abs(err_rounds) <= 5, axis=0).sum()),
        "mean_abs_error_plain_pct": float(np.abs(err_plain).mean()),
        "within_5pct_plain": int((np.abs(err_plain) <= 5).sum()),
        "mean_abs_error_table_sum_pct": float(np.abs(err_sum).mean()),
        "within_5pct_table_sum": int((np.abs(err_sum) <= 5).sum())}


def write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "export.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    lines = ["# Export benchmark", "", f"Machine: {report['machine']}. Generated by `benchmarks/export.py`.", ""]
    if "formats" in report:
        lines += ["## Formats (OFA-MBv3 w1.2 at 160 px, digits-supernet weights; latency 1 thread, median)", "",
                  "| subnet | format | weights | export s | MB | accuracy runtime (torch) | agreement | "
                  "latency ms (runtime) |", "|---|---|---|---|---|---|---|---|"]
        for r in report["formats"]["rows"]:
            lines.append(f"| {r['subnet']} | {r['format']} | {r['quantize']} | {r['export_s']:.1f} | "
                         f"{r['bytes'] / 1e6:.2f} | {r['acc_runtime']:.4f} ({r['acc_torch']:.4f}) | "
                         f"{r['agreement']:.4f} | {r['latency_ms']:.3f} ({r['device']}) |")
        rows = report["formats"]["rows"]
        drops = [f["acc_runtime"] - q["acc_runtime"] for f in rows for q in rows
                 if f["subnet"] == q["subnet"] and f["format"] == q["format"] and f["quantize"] == "float32"
                 and q["quantize"] == "int8"]
        lines += ["", f"int8 accuracy drop (float runtime − int8 runtime): mean {100 * np.mean(drops):+.2f} points "
                      f"over {len(drops)} pairs.", ""]
    if "simplify" in report:
        lines += ["## ONNX simplifiers", "", "| subnet | tool | s | nodes | ORT ms (unsimplified) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['subnet']} | {r['tool']} | {r['seconds']:.2f} | {r['nodes_before']} → {r['nodes_after']} | "
                  f"{r['latency_ms']:.3f} ({r['latency_unsimplified_ms']:.3f}) |" for r in report["simplify"]["rows"]]
        lines.append("")
    if report.get("closed", {}).get("protocol") == "speed reference":
        c = report["closed"]
        cal, ref = c["calibration"], c["calibration"]["reference"]
        n = len(c["rows"])
        lines += ["## Measured vs predicted (exported ONNX on the CPU)", "",
                  "The product's path: `tailor predictor calibrate --classes 10` (the exported models' digits "
                  f"head) on this machine's table (8 subnets, {c.get('calibration_rounds', 1)} round(s), each in "
                  f"alternation with the smallest subnet, the speed reference: {ref['ms']:.3f} ms over the "
                  f"calibration, spread {100 * ref['spread']:.0f} %): {cal['a']:.3f} × sum {cal['b']:+.3f} ms"
                  + (", the entries of each output size scaled first ("
                     + ", ".join(f"{g} ×{m:.3f}" for g, m in sorted(cal["size_scale"].items()) if abs(m - 1) > 5e-4)
                     + ")" if cal.get("size_scale") else "") + ". Then "
                  f"`tailor export --device cpu` with that predictor for {n} subnets: each exported file measured "
                  "in alternation with the reference and read at the calibration's speed; "
                  f"{c['rounds']} round-robin rounds (round 1 is the manifest's), median. The reference ran "
                  f"{c['slowdown_range'][0]:.2f}–{c['slowdown_range'][1]:.2f}× its calibration time meanwhile. "
                  "'cal.' marks the subnets that are also among the calibration's 8 (its smallest and largest).", "",
                  "| predicted ms | at calibration speed ms | error | error per round | own latency ms | "
                  "plain calibration ms | its error | table sum error |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['predicted_ms']:.3f}{' (cal.)' if r['in_calibration'] else ''} | "
                  f"{r['measured_at_calibration_ms']:.3f} | {r['error_pct']:+.1f} % | "
                  f"{', '.join(f'{e:+.1f}' for e in r['error_pct_rounds'])} | {r['measured_own_median_ms']:.3f} | "
                  f"{r['predicted_plain_ms']:.3f} | {r['error_plain_pct']:+.1f} % | {r['error_table_sum_pct']:+.1f} % |"
                  for r in c["rows"]]
        lines += ["", f"Read at the calibration's speed: mean |error| **{c['mean_abs_error_pct']:.1f} %, within 5 %: "
                      f"{c['within_5pct']}/{n}** ({c['within_5pct_every_round']}/{n} in every round); a file's "
                      f"rounds differ by {c['round_spread_at_calibration_pct']:.1f} % read that way and by "
                      f"{c['round_spread_own_pct']:.1f} % in its own latency. Plain calibration on own latencies: "
                      f"{c['mean_abs_error_plain_pct']:.1f} %, {c['within_5pct_plain']}/{n}; table sum: "
                      f"{c['mean_abs_error_table_sum_pct']:.1f} %, {c['within_5pct_table_sum']}/{n} "
                      "(goal: all within 5 %).", ""]
    (RESULTS / "export.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="formats,simplify,closed")
    ap.add_argument("--supernet", type=Path, default=None, help="trained ofa-mbv3 width-1.2 digits supernet")
    ap.add_argument("--db", default="sqlite:///tailor.db")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cal-rounds", type=int, default=3, help="calibration rounds (`tailor predictor calibrate "
                    "--rounds`)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    report: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, "
                                         f"{platform.python_version()}, 1 thread"}
    old = RESULTS / "export.json"
    if old.is_file():
        report.update({k: v for k, v in json.loads(old.read_text()).items() if k not in sections})
    ckpt = supernet(args.supernet) if sections & {"formats", "closed"} else None
    if "formats" in sections:
        bench_formats(report, ckpt)
        write(report)
    if "simplify" in sections:
        bench_simplify(report, args.rounds)
        write(report)
    if "closed" in sections:
        bench_closed(report, ckpt, args.db, args.rounds, args.cal_rounds)
        write(report)


if __name__ == "__main__":
    main()
