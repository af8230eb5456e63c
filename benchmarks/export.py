"""Export benchmark → benchmarks/results/export.md|json.

Sections:
- ``formats``: for three OFA-MBv3 subnets (width 1.2, 160 px) with digits-supernet weights: export time, file size,
  digits test accuracy in the runtime and top-1 agreement with torch, for ONNX and TFLite, float32 and int8; the
  latency of each file measured in its own runtime (ONNX Runtime for .onnx, LiteRT for .tflite; 1 thread).
- ``simplify``: onnxsim against onnxslim on the same subnets: seconds, node counts, and ORT latency of the result
  (interleaved rounds), which is how the default simplifier was chosen.
- ``closed``: measured vs predicted latency of exported ONNX files on the CPU: the lookup table of this machine
  (``tailor.db``, built or resumed) predicts each subnet; each exported file is measured in interleaved rounds.
  Goal: within 5 %.

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


def bench_closed(report: dict[str, Any], ckpt: Path, db: str, rounds: int) -> None:
    from tailorkit.predictors import LutSumPredictor
    from tailorkit.predictors.lut import fit_correction
    from tailorkit.profiler.api import build_table, profile
    from tailorkit.profiler.store import TableStore
    from tailorkit.search.specialize import ExportOptions, export_arch
    from tailorkit.search.supernet import load_digits_splits
    from tailorkit.spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(width=WIDTH)
    with TableStore(db) as store:
        build_table("ofa-mbv3", "cpu", resolution=R, width=WIDTH, store=store)
        table = store.table(f"ofa-mbv3-w{WIDTH:g}-r{R}")
    pred = LutSumPredictor(table, device="cpu")
    rng = np.random.default_rng(11)
    archs = subnets() + [space.sample(rng, R) for _ in range(5)]
    predicted = pred.predict_archs(space, space.to_array(archs))
    work = Path(tempfile.mkdtemp(prefix="tailor-bench-closed-"))
    data = load_digits_splits()
    files = []
    for i, arch in enumerate(archs):
        m = export_arch(space, arch, work / str(i), ExportOptions(supernet=ckpt), source={"kind": "arch"}, data=data)
        files.append(work / str(i) / m.model_file())
    def run(j: int) -> float:
        return profile(files[j], "cpu", input_shapes={"input": space.input_shape(archs[j])}).latency.median

    # Round-robin, and every file paired with the smallest subnet (file 0) measured right before it: this VM's
    # speed moves in episodes of seconds (results/drift.md); file / reference carries an episode out.
    measured, reference = np.zeros((rounds, len(archs))), np.zeros((rounds, len(archs)))
    for r in range(rounds):
        for j in range(len(archs)):
            reference[r, j], measured[r, j] = run(0), run(j)
        print(f"round {r + 1}/{rounds}: {np.round(measured[r], 3).tolist()}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    # The closed loop as `tailor export --refit` runs it: every other exported model's measurement is in the store,
    # and the table's end-to-end correction a·Σ + b is fitted on them before this one is predicted.
    others = ~np.eye(len(archs), dtype=bool)

    def errors(med: np.ndarray) -> dict[str, Any]:
        calibrated = np.array([np.polyval(fit_correction(predicted[o], med[o]), predicted[j])
                               for j, o in enumerate(others)])
        plain, fitted = 100 * (predicted - med) / med, 100 * (calibrated - med) / med
        return {"measured_ms": med.tolist(), "error_pct": plain.tolist(), "calibrated_ms": calibrated.tolist(),
                "calibrated_error_pct": fitted.tolist(), "mean_abs_error_pct": float(np.abs(plain).mean()),
                "within_5pct": int((np.abs(plain) <= 5).sum()),
                "calibrated_mean_abs_error_pct": float(np.abs(fitted).mean()),
                "calibrated_within_5pct": int((np.abs(fitted) <= 5).sum())}

    plain = errors(np.median(measured, axis=0))
    rows = [{"predicted_ms": float(p), "measured_median_ms": m, "error_pct": e, "calibrated_ms": c,
             "calibrated_error_pct": ce, "arch": space.arch_to_dict(a)}
            for p, m, e, c, ce, a in zip(predicted, plain["measured_ms"], plain["error_pct"], plain["calibrated_ms"],
                                         plain["calibrated_error_pct"], archs, strict=True)]
    scale = float(np.median(reference))
    report["closed"] = {"table": f"ofa-mbv3-w{WIDTH:g}-r{R} (this machine, {db})", "rounds": rounds, "rows": rows,
                        **{k: v for k, v in plain.items() if not isinstance(v, list)},
                        "reference_normalised": {"reference_median_ms": scale,
                                                 **errors(np.median(measured / reference, axis=0) * scale)},
                        "round_spread_pct": float(100 * np.mean((measured.max(0) - measured.min(0))
                                                                / measured.min(0)))}


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
    if "closed" in report:
        c = report["closed"]
        calibrated = "calibrated_ms" in c["rows"][0]
        lines += ["## Measured vs predicted (exported ONNX on the CPU)", "",
                  f"{c['rounds']} interleaved rounds; mean spread between a file's fastest and slowest round "
                  f"{c['round_spread_pct']:.0f} %. Table sum: the lookup table as built. Calibrated: the table's "
                  "end-to-end correction a·Σ + b (Theil–Sen, as `tailor export --refit` fits it from the store) "
                  "fitted on the other exported models' measurements, never on the model predicted.", "",
                  "| table sum ms | measured ms | error |" + (" calibrated ms | error |" if calibrated else ""),
                  "|---|---|---|" + ("---|---|" if calibrated else "")]
        lines += [f"| {r['predicted_ms']:.3f} | {r['measured_median_ms']:.3f} | {r['error_pct']:+.1f} % |"
                  + (f" {r['calibrated_ms']:.3f} | {r['calibrated_error_pct']:+.1f} % |" if calibrated else "")
                  for r in c["rows"]]
        n = len(c["rows"])
        lines += ["", f"Table sum: mean |error| {c['mean_abs_error_pct']:.1f} %, within 5 %: {c['within_5pct']}/{n}."]
        if calibrated:
            lines += [f"Calibrated: mean |error| {c['calibrated_mean_abs_error_pct']:.1f} %, within 5 %: "
                      f"{c['calibrated_within_5pct']}/{n} (goal: all)."]
        if "reference_normalised" in c:
            z = c["reference_normalised"]
            lines += ["", f"Reference-normalised: each measurement divided by the smallest subnet's, measured right "
                      f"before it, × that reference's median over the run ({z['reference_median_ms']:.3f} ms), which "
                      "carries the VM's speed episodes out; the correction is refitted on these values.", "",
                      "| table sum ms | measured (normalised) ms | error | calibrated ms | error |",
                      "|---|---|---|---|---|"]
            lines += [f"| {p['predicted_ms']:.3f} | {m:.3f} | {e:+.1f} % | {cm:.3f} | {ce:+.1f} % |"
                      for p, m, e, cm, ce in zip(c["rows"], z["measured_ms"], z["error_pct"], z["calibrated_ms"],
                                                 z["calibrated_error_pct"], strict=True)]
            lines += ["", f"Table sum: mean |error| {z['mean_abs_error_pct']:.1f} %, within 5 %: "
                      f"{z['within_5pct']}/{n}. Calibrated: mean |error| {z['calibrated_mean_abs_error_pct']:.1f} %, "
                      f"within 5 %: {z['calibrated_within_5pct']}/{n}."]
        lines.append("")
    (RESULTS / "export.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="formats,simplify,closed")
    ap.add_argument("--supernet", type=Path, default=None, help="trained ofa-mbv3 width-1.2 digits supernet")
    ap.add_argument("--db", default="sqlite:///tailor.db")
    ap.add_argument("--rounds", type=int, default=5)
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
        bench_closed(report, ckpt, args.db, args.rounds)
        write(report)


if __name__ == "__main__":
    main()
