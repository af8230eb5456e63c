"""``tailor``: thin commands over the library. Progress and colour live here and nowhere else."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tailorkit.core.config import TailorConfig, load_config
from tailorkit.core.documents import sha256_file
from tailorkit.core.errors import ConfigError, TailorError
from tailorkit.core.foreign_tables import FOREIGN_FORMATS
from tailorkit.core.records import BenchmarkSettings, DeviceInfo, Latency
from tailorkit.core.table import FORMATS, LatencyTable
from tailorkit.core.version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="tailorkit: measure, tabulate, predict, search and export networks for real devices.")
table_app = typer.Typer(no_args_is_help=True, help="Build, show, export and import latency lookup tables.")
app.add_typer(table_app, name="table")

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tailor.toml to use (default: ./tailor.toml).")]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the store (default from "
                                                            "tailor.toml, else sqlite:///tailor.db).")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="Device name (`tailor devices` lists them).")]
WarmupOpt = Annotated[int | None, typer.Option("--warmup", help="Untimed inferences first [10].")]
RunsOpt = Annotated[int | None, typer.Option("--runs", help="Timed samples [100].")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Intra-op threads [1].")]
VariantDeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="Variant: device name or fingerprint prefix (`tailor table show` lists them).")]
VariantSettingsOpt = Annotated[str | None, typer.Option("--settings", help="Variant: settings fingerprint prefix.")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Seconds one measurement may take [120].")]
NumberOpt = Annotated[int | None, typer.Option(
    "--number", help="Inferences per sample; 0 = enough for min_sample_ms (3 ms) each [0].")]


def _settings(config: TailorConfig, device: str, **flags: Any) -> BenchmarkSettings:
    return config.settings(device, **flags)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _device_line(info: DeviceInfo) -> str:
    state = ", ".join(f"{k}={v}" for k, v in info.state.items())
    return (f"{info.name} ({info.kind}): {info.hardware}, {info.runtime} {info.runtime_version}, "
            f"{info.threads} thread(s)" + (f", {state}" if state else ""))


def _latency_table(title: str, lat: Latency) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    for column in ("mean ms", "median ms", "std ms", "p90 ms", "min ms", "n", "CV"):
        table.add_column(column, justify="right")
    table.add_row(_fmt(lat.mean), _fmt(lat.median), _fmt(lat.std), _fmt(lat.p90), _fmt(lat.min),
                  f"{lat.n}/{lat.n_total or lat.n}" + (f" ×{lat.number}" if lat.number > 1 else ""),
                  f"{lat.cv * 100:.1f} %")
    return table


def _parse_shapes(shapes: list[str]) -> dict[str, tuple[int, ...]]:
    parsed: dict[str, tuple[int, ...]] = {}
    for item in shapes:
        name, _, dims = item.rpartition(":")
        try:
            values = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
        except ValueError:
            raise ConfigError(f"--shape {item!r} must look like 1x3x224x224 or NAME:1x3x224x224") from None
        if not values or min(values) < 1:
            raise ConfigError(f"--shape {item!r}: dims must be positive integers")
        parsed[name] = values
    return parsed


# ------------------------------------------------------------------------------------------------ devices


@app.command()
def devices(config_path: ConfigOpt = None) -> None:
    """List configured devices (built-in `cpu` plus tailor.toml's) and whether each is reachable."""
    from tailorkit.devices import create_device

    config = load_config(config_path)
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "kind", "status", "details"):
        table.add_column(column)
    for name, dev_config in sorted(config.devices.items()):
        try:
            device = create_device(dev_config)
            try:
                problem = device.check()
                details = _device_line(device.info(config.settings(name))) if problem is None else problem
            finally:
                device.close()  # a phone's session leaves a run directory until closed
        except TailorError as exc:
            problem, details = str(exc), str(exc)
        status = "[green]reachable[/green]" if problem is None else "[red]unavailable[/red]"
        table.add_row(name, dev_config.kind, status, escape(details))  # install hints hold [extras]
    out.print(table)


# ------------------------------------------------------------------------------------------------ profile


@app.command()
def profile(
    model: Annotated[str, typer.Argument(help="model.onnx, a built-in (ofa-mbv3-max, ofa-mbv3-min, "
                                              "ofa-mbv3-w1.2-max, ofa-mbv3-w1.2-min) or package.module:attr.")],
    device: DeviceOpt = "cpu",
    per_op: Annotated[bool, typer.Option("--per-op", help="Also profile every node as the runtime ran it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    warmup: WarmupOpt = None, runs: RunsOpt = None, threads: ThreadsOpt = None, number: NumberOpt = None,
    timeout: TimeoutOpt = None,
    shape: Annotated[list[str] | None, typer.Option(
        "--shape", help="Input shape for dynamic dims or torch modules: 1x3x224x224 or NAME:1x3x224x224.")] = None,
    resolution: Annotated[int, typer.Option(help="Input resolution of built-in models.")] = 224,
    sort: Annotated[str, typer.Option(help="Per-op row order: run (execution order) or time.")] = "run",
    against: Annotated[str | None, typer.Option(
        "--against", help="Measure in alternation with this model (same forms; built-ins at --resolution, others "
                          "with --shape) and report the ratio, which holds still while a shared machine's speed "
                          "moves.")] = None,
    pairs: Annotated[int | None, typer.Option(min=1, help="With --against: alternations [the device's own: 32 "
                                                          "in process, 5 whole runs otherwise].")] = None,
    config_path: ConfigOpt = None,
) -> None:
    """Measure end-to-end latency on a device; with --per-op, the operator-wise profile; with --against, the
    latency relative to another model measured in alternation with it."""
    from tailorkit.profiler.api import open_device
    from tailorkit.profiler.api import profile as run_profile

    if sort not in ("run", "time"):
        raise ConfigError(f"--sort must be run or time, got {sort!r}")
    if against is not None and per_op:
        raise ConfigError("--against measures end to end; drop --per-op")
    if pairs is not None and against is None:
        raise ConfigError("--pairs needs --against")
    config = load_config(config_path)
    settings = _settings(config, device, warmup=warmup, runs=runs, threads=threads, number=number,
                         timeout_s=timeout)
    dev = open_device(device, config)
    if not as_json:
        err.print(f"[dim]profiling {model} on {device}" + (f" against {against}" if against else "") + "…[/dim]")
    if against is not None:
        _profile_against(model, against, dev, settings, _parse_shapes(shape or []), resolution, pairs, config,
                         as_json)
        return
    result = run_profile(model, dev, settings=settings, per_op=per_op, input_shapes=_parse_shapes(shape or []),
                         resolution=resolution, config=config)
    if as_json:
        print(json.dumps(result.to_dict(), indent=1))
        return
    out.print(f"[bold]{result.model}[/bold] on {_device_line(result.device)}")
    out.print("inputs: " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result.input_shapes.items()))
    out.print(_latency_table("End-to-end latency", result.latency))
    if result.ops is not None:
        total = sum(o.latency.mean for o in result.ops) or 1.0
        rows = sorted(result.ops, key=lambda o: -o.latency.mean) if sort == "time" else list(result.ops)
        table = Table(title=f"Operator-wise profiling ({'top by time' if sort == 'time' else 'run order'})",
                      header_style="bold")
        for column, justify in (("node", "left"), ("op type", "left"), ("avg ms", "right"), ("%", "right"),
                                ("cdf %", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        cumulative = 0.0
        for op in rows:
            cumulative += op.latency.mean
            table.add_row(op.name, op.op_type, _fmt(op.latency.mean, 4), f"{op.latency.mean / total * 100:.2f}",
                          f"{cumulative / total * 100:.2f}")
        out.print(table)
        by_type: dict[str, list[float]] = {}
        for op in result.ops:
            by_type.setdefault(op.op_type, []).append(op.latency.mean)
        summary = Table(title="Summary by op type", header_style="bold")
        for column in ("op type", "nodes", "avg ms", "%"):
            summary.add_column(column, justify="left" if column == "op type" else "right")
        for op_type, values in sorted(by_type.items(), key=lambda kv: -sum(kv[1])):
            summary.add_row(op_type, str(len(values)), _fmt(sum(values), 4), f"{sum(values) / total * 100:.2f}")
        out.print(summary)
        out.print(f"sum of per-op averages: {total:.3f} ms (profiled runs; the end-to-end numbers above are "
                  "from runs without the profiler)")


def _profile_against(model: str, against: str, dev: Any, settings: BenchmarkSettings,
                     shapes: dict[str, tuple[int, ...]], resolution: int, pairs: int | None, config: TailorConfig,
                     as_json: bool) -> None:
    from tailorkit.profiler.api import profile_paired
    from tailorkit.profiler.models import BUILTIN_MODELS

    # --shape describes the reference's input too, unless it is a built-in (those take --resolution)
    result = profile_paired(model, against, dev, settings=settings, input_shapes=shapes or None, pairs=pairs,
                            reference_shapes=None if against in BUILTIN_MODELS else shapes or None,
                            resolution=resolution, config=config)
    lat = result.latency
    if as_json:
        print(json.dumps({"model": result.model, "reference": result.reference, "device": result.device.to_dict(),
                          "settings": result.settings.to_dict(), "ratio": lat.ratio,
                          "ratio_spread": lat.ratio_spread, "pairs": lat.pairs, "latency_ms": lat.target.summary(),
                          "reference_latency_ms": lat.reference.summary()}, indent=1))
        return
    out.print(f"[bold]{result.model}[/bold] against [bold]{result.reference}[/bold] on "
              f"{_device_line(result.device)}")
    out.print(f"ratio {lat.ratio:.4g} (interquartile range {100 * lat.ratio_spread:.1f} % of it over {lat.pairs} "
              "alternations)", highlight=False)
    out.print(_latency_table(f"{result.model}", lat.target))
    out.print(_latency_table(f"{result.reference}", lat.reference))


# -------------------------------------------------------------------------------------------------- table


@table_app.command("build")
def table_build(
    space: Annotated[str, typer.Option(help="Search space whose ops to measure.")] = "ofa-mbv3",
    device: DeviceOpt = "cpu",
    resolution: Annotated[int, typer.Option(help="Input resolution (OFA-MBv3: 128..224 step 4).")] = 224,
    width: Annotated[float, typer.Option(help="Width multiplier (OFA-MBv3: 1.0 or 1.2).")] = 1.0,
    db: DbOpt = None,
    name: Annotated[str | None, typer.Option(help="Table name [SPACE-wWIDTH-rRESOLUTION].")] = None,
    warmup: WarmupOpt = None, runs: RunsOpt = None, threads: ThreadsOpt = None, number: NumberOpt = None,
    timeout: TimeoutOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Measure at most this many ops not yet stored, then "
                                                          "stop (a rerun continues).")] = None,
    classes: Annotated[list[int] | None, typer.Option(
        "--classes", help="Also measure the classifier for this many classes (repeatable) [10: the digits "
                          "head the supernets train; the space's own is ImageNet's 1000].")] = None,
    config_path: ConfigOpt = None,
) -> None:
    """Measure every distinct op of a space as a single-op model into the store; reruns resume."""
    from tailorkit.profiler.api import build_table, open_device
    from tailorkit.profiler.tables import TableProgress

    config = load_config(config_path)
    settings = _settings(config, device, warmup=warmup, runs=runs, threads=threads, number=number,
                         timeout_s=timeout)
    dev = open_device(device, config)
    url = db or config.store_url
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn(), TextColumn("[dim]{task.fields[last]}"))
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("measuring", total=None, last="")

        def on_progress(event: TableProgress) -> None:
            if event.key is None or event.latency is None:
                last = ""
            else:  # phones report no median (benchmark_model prints mean, min, max, std)
                middle = event.latency.median if event.latency.median is not None else event.latency.mean
                last = f"{event.key[:60]} {middle:.3f} ms"
            bar.update(task, description=event.table, total=event.total, completed=event.already + event.done,
                       last=last)

        report = build_table(space, dev, resolution=resolution, width=width, store=url, settings=settings,
                             name=name, config=config, progress=on_progress, limit=limit,
                             **({} if classes is None else {"classes": tuple(classes)}))
    out.print(f"table [bold]{report.table}[/bold] on {_device_line(report.device)}")
    line = f"{report.total} ops: {report.measured} measured now, {report.already} already in {url}"
    if report.remaining:
        line += f", {report.remaining} left for a rerun"
    if report.measured:
        line += (f"; {report.wall_s:.1f} s (export {report.export_s:.1f} s, measuring {report.measure_s:.1f} s, "
                 f"overhead {report.overhead * 100:.1f} %)")
    out.print(line)


@table_app.command("show")
def table_show(
    name: Annotated[str | None, typer.Argument(help="Table to list entries of; omit to list tables.")] = None,
    db: DbOpt = None,
    device: VariantDeviceOpt = None, settings: VariantSettingsOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """List the tables in the store, or the entries of one."""
    from tailorkit.profiler.store import TableStore

    config = load_config(config_path)
    with TableStore(db or config.store_url, create=False) as store:
        if name is None:
            table = Table(title=f"Tables in {store.url}", header_style="bold")
            table.add_column("name", no_wrap=True)
            for column in ("space", "device", "entries", "device fp", "settings fp", "last measured"):
                table.add_column(column, justify="right" if column == "entries" else "left")
            for v in store.variants():
                when = datetime.fromtimestamp(v.last_measured).strftime("%Y-%m-%d %H:%M")
                table.add_row(v.name, v.space or "-", v.device_name, str(v.entries), v.device_fingerprint[:8],
                              v.settings_fingerprint[:8], when)
            out.print(table)
            return
        lat_table = store.table(name, device=device, settings=settings)
    table = Table(title=f"{lat_table.name} on {lat_table.device.name if lat_table.device else '?'}",
                  header_style="bold")
    for column in ("key", "mean ms", "median ms", "std ms", "n", "CV"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for key, lat in lat_table.entries.items():
        table.add_row(key, _fmt(lat.mean, 4), _fmt(lat.median, 4), _fmt(lat.std, 4), str(lat.n),
                      f"{lat.cv * 100:.1f} %")
    out.print(table)
    out.print(f"{len(lat_table)} entries, Σ mean = {sum(lat.mean for lat in lat_table.entries.values()):.3f} ms")


@table_app.command("export")
def table_export(
    name: Annotated[str, typer.Argument(help="Table name (`tailor table show` lists them).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write (.yaml, .csv or .json).")],
    fmt: Annotated[str | None, typer.Option("--format", help=f"One of {', '.join(FORMATS)} [from -o].")] = None,
    db: DbOpt = None,
    device: VariantDeviceOpt = None, settings: VariantSettingsOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Write a table as OFA YAML (count/mean/std, ms), CSV or JSON (with raw samples)."""
    from tailorkit.profiler.store import TableStore

    config = load_config(config_path)
    with TableStore(db or config.store_url, create=False) as store:
        table = store.table(name, device=device, settings=settings)
    path = table.write(output, fmt)
    out.print(f"wrote {len(table)} entries of {table.name} to {path}")


@table_app.command("import")
def table_import(
    file: Annotated[Path, typer.Argument(help="OFA YAML, CSV or tailorkit JSON table, or a published table in "
                                              "one of the foreign formats (--format).")],
    name: Annotated[str | None, typer.Option(help="Table name in the store [file stem].")] = None,
    device: Annotated[str | None, typer.Option(help="Name of the device it was measured on.")] = None,
    space: Annotated[str | None, typer.Option(help="Search space the keys belong to.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help=f"One of {', '.join(FORMATS + tuple(FOREIGN_FORMATS))} "
                                                              "[from name].")] = None,
    db: DbOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Import a published or exported table; every key and number is validated before anything is stored.
    Foreign formats: proxylessnas (ProxylessNAS mobile_trim.yaml), fbnet-rpi (jh88/fbnet lookup_table_pi.json)."""
    from tailorkit.profiler.store import TableStore

    config = load_config(config_path)
    if fmt is not None and fmt not in FORMATS and fmt not in FOREIGN_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS + tuple(FOREIGN_FORMATS))}, got {fmt!r}")
    if fmt in FOREIGN_FORMATS:
        table = FOREIGN_FORMATS[fmt](file, name)
        if space is not None and space != table.space:
            raise ConfigError(f"a {fmt} table belongs to space {table.space!r}, not {space!r}")
    else:
        table = LatencyTable.read(file, name, fmt=fmt, space=space)
    info = table.device or DeviceInfo(
        name=device or "imported", kind="imported", hardware=device or "unknown", runtime="unknown",
        runtime_version="", tailorkit_version=__version__, properties={"source": file.name})
    settings = table.settings or BenchmarkSettings()
    with TableStore(db or config.store_url) as store:
        count = store.import_table(table, info, settings,
                                   meta={**table.meta, "imported_from": str(file), "sha256": sha256_file(file)})
    out.print(f"imported {count} entries into table {table.name} ({store.url})")


# -------------------------------------------------------------------------------------------------- space

space_app = typer.Typer(no_args_is_help=True, help="List search spaces, sample archs, show an arch's ops.")
app.add_typer(space_app, name="space")
WidthOpt = Annotated[float, typer.Option(help="ofa-mbv3: width multiplier (1.0 or 1.2).")]


def _space(name: str, width: float) -> Any:
    from tailorkit.spaces import create_space

    return create_space(name, width)


def _read_arch(space: Any, text: str) -> Any:
    """An arch as JSON (``@FILE`` reads a file), or for NB201/FBNet their text form."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read arch file {str(path)!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"arch file {str(path)!r} is not UTF-8 text") from None
    if not text.lstrip().startswith("{") and hasattr(space, "arch_type"):
        return space.arch_type.from_str(text.strip())
    return space.arch_from_json(text)


@space_app.command("list")
def space_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False) -> None:
    """Names, sizes and encodings of the search spaces."""
    from tailorkit.spaces import spaces

    rows = [_space(name, 1.0).describe() for name in spaces]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table(title="Search spaces", header_style="bold")
    for column in ("name", "archs", "encoding", "length", "ops to measure"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], f"{row['archs']:.3g}", row["encoding"], str(row["encoding_length"]),
                      "yes" if row["buildable"] else "no (public tables)")
    out.print(table)


@space_app.command("sample")
def space_sample(
    name: Annotated[str, typer.Argument(help="Space name (`tailor space list`).")],
    n: Annotated[int, typer.Option("--n", help="How many archs.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    width: WidthOpt = 1.0,
) -> None:
    """Random archs as JSON lines (what --arch and arch files take)."""
    import numpy as np

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    space = _space(name, width)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        print(space.arch_to_json(space.sample(rng)))


@space_app.command("ops")
def space_ops(
    name: Annotated[str, typer.Argument(help="Space name.")],
    arch: Annotated[str, typer.Option(help="Arch JSON, or @FILE.")],
    width: WidthOpt = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The ops an arch runs, in order, with their latency-table keys."""
    space = _space(name, width)
    ops = space.ops(_read_arch(space, arch))
    if as_json:
        for op in ops:
            print(json.dumps({"key": op.key, **op.to_dict()}))
        return
    table = Table(title=f"{len(ops)} ops", header_style="bold")
    for column in ("#", "op type", "input", "output", "key"):
        table.add_column(column, overflow="fold")
    for i, op in enumerate(ops):
        table.add_row(str(i), op.op_type, "x".join(map(str, op.input_shape)), "x".join(map(str, op.output_shape)),
                      op.key)
    out.print(table)


# ----------------------------------------------------------------------------------------------- supernet

supernet_app = typer.Typer(no_args_is_help=True, help="Train weight-sharing supernets on digits; evaluate subnets.")
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
def supernet_train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Checkpoint folder (a rerun resumes it).")],
    space: Annotated[str, typer.Option(help="Space of the supernet: ofa-mbv3 (progressive shrinking), spos (the "
                                            "20 blocks) or spos-reduced (5 blocks): uniform paths after a "
                                            "warm-up on the k7 units.")] = "ofa-mbv3",
    epochs: Annotated[int | None, typer.Option(help="Epochs over the digits training split [8 for ofa-mbv3, 20 "
                                                    "for SPOS: uniform paths need more steps].")] = None,
    width: WidthOpt = 1.0,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine decay).")] = 0.05,
    subnets: Annotated[int, typer.Option(help="Subnets trained per step (OFA: the largest, the phase's smallest "
                                              "with --sandwich, and sampled ones).")] = 2,
    sandwich: Annotated[bool, typer.Option(help="OFA: train the phase's smallest subnet every step (BigNAS's "
                                                "sandwich rule).")] = True,
    distill: Annotated[float, typer.Option(help="OFA: weight of in-place distillation from the largest subnet "
                                                "(0: labels only).")] = 1.0,
    warmup_epochs: Annotated[int | None, typer.Option(help="SPOS: epochs that train only the k7 unit of every "
                                                           "block (widths sampled) before all units inherit its "
                                                           "weights and paths are drawn uniformly [half the "
                                                           "epochs, at most 5; 0: uniform from the start].")] = None,
    steps_per_epoch: Annotated[int | None, typer.Option(help="Steps per epoch [one pass over the images].")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a supernet on scikit-learn's digits; checkpoint every epoch, resume on rerun."""
    from tailorkit.search.supernet import SUPERNET_SPACES, EpochReport, SupernetConfig, train_supernet
    from tailorkit.spaces import spaces

    spaces.get(space)  # an unknown name lists the known ones
    if space not in SUPERNET_SPACES:
        raise ConfigError(f"no supernet for space {space!r} yet; available: {', '.join(SUPERNET_SPACES)}")
    if epochs is None:
        epochs = 8 if space == "ofa-mbv3" else 20
    config = SupernetConfig(epochs=epochs, batch_size=batch_size, lr=lr, subnets_per_step=subnets, width=width,
                            seed=seed, steps_per_epoch=steps_per_epoch, space=space, sandwich=sandwich,
                            distill=distill, warmup_epochs=warmup_epochs)
    spaces.create(space, width=width)  # a bad width fails before any folder is made
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), console=err, transient=False) as bar:
        task = bar.add_task("training", total=None)
        last: list[EpochReport] = []

        def on_step(step: int, total: int, report: EpochReport | None) -> None:
            bar.update(task, completed=step, total=total)
            if report is not None:
                last.append(report)
                bar.console.print(f"epoch {report.epoch}/{epochs} ({report.phase}): loss {report.loss:.3f}, val "
                                  f"accuracy largest {report.val_largest:.3f} smallest {report.val_smallest:.3f}, "
                                  f"{report.seconds:.0f} s")

        train_supernet(config, output, progress=on_step)
    if not last:
        err.print(f"nothing to train: {output} already holds all {epochs} epochs", highlight=False)
    elif max(last[-1].val_largest, last[-1].val_smallest) < 0.2:  # ten classes: chance is 0.1
        err.print(f"warning: the supernet is still at chance on the validation images (largest "
                  f"{last[-1].val_largest:.3f}, smallest {last[-1].val_smallest:.3f}); train longer"
                  + (" (the full SPOS body learns from uniform paths only after --warmup-epochs)"
                     if space == "spos" and not config.warmup_epochs else ""), highlight=False)
    out.print(f"supernet checkpoint in {output}")


@supernet_app.command("eval")
def supernet_eval(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder from `tailor supernet train`.")],
    arch: Annotated[list[str], typer.Option(help="Arch JSON or @FILE; repeatable. [largest and smallest]")] = [],  # noqa: B006
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Digits accuracy of subnets run by the supernet (batch norm recalibrated per subnet)."""
    from tailorkit.search.supernet import accuracy, evaluate_arch, load_digits_splits, load_supernet, resolution_of

    net, _config, _history = load_supernet(checkpoint)
    archs = [_read_arch(net.space, a) for a in arch] or [net.space.largest(), net.space.smallest()]
    data = load_digits_splits()
    for a in archs:
        supernet_acc = evaluate_arch(net, data, a, split)
        extracted_acc = accuracy(net.extract(a), data, resolution_of(net, a), split)
        if as_json:
            print(json.dumps({"arch": net.space.arch_to_dict(a), "split": split, "accuracy": supernet_acc,
                              "extracted_accuracy": extracted_acc}))
        else:
            out.print(f"{split} accuracy {supernet_acc:.4f} (extracted subnet {extracted_acc:.4f})  "
                      f"{net.space.arch_to_json(a)}", highlight=False)


@supernet_app.command("accuracy")
def supernet_accuracy(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder from `tailor supernet train` (ofa-mbv3).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Accuracy predictor file (.tlp).")],
    n: Annotated[int, typer.Option("--n", help="Random subnets to evaluate (plus the largest and smallest).")] = 100,
    held_out: Annotated[float, typer.Option(help="Share of them kept aside to report the predictor's "
                                                 "ranking quality.")] = 0.2,
    steps: Annotated[int, typer.Option(help="MLP training steps.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """OFA's accuracy predictor: evaluate N subnets with the supernet (digits validation split), fit an MLP on
    their encodings, report its Kendall tau on held-out subnets, and save it for `tailor search --accuracy`."""
    from scipy.stats import kendalltau

    from tailorkit.search.accuracy import fit_accuracy_predictor, supernet_accuracies
    from tailorkit.search.supernet import load_digits_splits, load_supernet
    from tailorkit.spaces.ofa_mbv3 import OFAMobileNetV3Space

    if n < 10:
        raise ConfigError("--n must be at least 10 subnets")
    if not 0.0 <= held_out < 0.5:
        raise ConfigError("--held-out must be in [0, 0.5)")
    if output.exists() and output.is_dir():
        raise ConfigError(f"output {str(output)!r} is a directory")
    net, config, _ = load_supernet(checkpoint)
    if config.space != "ofa-mbv3":
        raise ConfigError(f"accuracy predictors are for ofa-mbv3 supernets; {str(checkpoint)!r} is {config.space}")
    data = load_digits_splits()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:
        task = bar.add_task("evaluating subnets", total=n + 2)
        archs, acc = supernet_accuracies(net, data, n, seed=seed,
                                         progress=lambda i, total: bar.update(task, completed=i, total=total))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(archs))
    k = int(round(held_out * len(archs)))
    test, train = order[:k], order[k:]
    if k >= 5:
        probe = fit_accuracy_predictor([archs[i] for i in train], acc[train], seed=seed, steps=steps)
        pred = probe.predict(OFAMobileNetV3Space.one_hot(OFAMobileNetV3Space.to_array([archs[i] for i in test])))
        tau = float(kendalltau(pred, acc[test]).statistic)
        out.print(f"held-out subnets: {k}, Kendall tau {tau:.3f}, MAE {np.abs(pred - acc[test]).mean():.4f}")
    predictor = fit_accuracy_predictor(archs, acc, seed=seed, steps=steps)  # the saved one sees every subnet
    predictor.save(output)
    out.print(f"accuracy predictor on {len(archs)} subnets (val accuracy {acc.min():.3f}..{acc.max():.3f}) "
              f"saved to {output}")


# ---------------------------------------------------------------------------------------------- predictor

predictor_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and apply latency predictors.")
app.add_typer(predictor_app, name="predictor")

KINDS = ("lut", "kernel", "model", "auto", "additive", "ridge", "gbm", "mlp", "hat-mlp", "fewshot")


def _rows(spec: str | None, n: int) -> np.ndarray:
    """``a:b`` (Python slice of the CSV's data rows), ``i,j,k``, or everything."""
    if not spec:
        return np.arange(n)
    try:
        if ":" in spec:
            start, _, stop = spec.partition(":")
            rows = np.arange(n)[slice(int(start) if start else None, int(stop) if stop else None)]
        else:
            rows = np.array([int(v) for v in spec.split(",")])
    except ValueError:
        raise ConfigError(f"--rows {spec!r} must look like 0:900 or 3,17,42") from None
    if rows.size == 0 or rows.min() < 0 or rows.max() >= n:
        raise ConfigError(f"--rows {spec!r} selects no rows or rows outside 0..{n - 1}")
    return rows


@predictor_app.command("train")
def predictor_train(
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(KINDS)}.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Predictor file to write (.tlp).")],
    csv: Annotated[Path | None, typer.Option(help="CSV with an arch column and latency columns (ms).")] = None,
    target: Annotated[str | None, typer.Option(help="Latency column to learn (the device).")] = None,
    encoding: Annotated[str | None, typer.Option(help="nb201, fbnet, hat or ofa-mbv3.")] = None,
    rows: Annotated[str | None, typer.Option(help="Training rows of the CSV: 0:900 or 3,17,42 [all].")] = None,
    table: Annotated[str | None, typer.Option(help="lut/kernel: table name in the store (kernel: several, "
                                                   "comma-separated).")] = None,
    table_file: Annotated[Path | None, typer.Option(help="lut/kernel: table file (OFA YAML, CSV, JSON).")] = None,
    interpolate: Annotated[bool, typer.Option(help="lut: fill ops the table lacks from a kernel-level model "
                                                   "fitted on its entries (otherwise a missing op is an "
                                                   "error).")] = False,
    db: DbOpt = None,
    device: VariantDeviceOpt = None,
    meta_devices: Annotated[str | None, typer.Option(
        help="fewshot: comma-separated latency columns of known devices to meta-train on.")] = None,
    meta_rows: Annotated[str | None, typer.Option(help="fewshot: rows to meta-train on [all but --rows].")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    config_path: ConfigOpt = None,
) -> None:
    """Train a predictor and save it (no pickle: a checksummed zip of arrays and JSON)."""
    from tailorkit.predictors import (
        FewShotPredictor,
        GBMPredictor,
        KernelPredictor,
        LutSumPredictor,
        MLPPredictor,
        RidgePredictor,
        evaluate,
        fit_best,
        model_candidates,
    )
    from tailorkit.predictors.datasets import read_csv_dataset

    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if interpolate and kind != "lut":
        raise ConfigError("--interpolate is for --kind lut")
    if kind in ("lut", "kernel"):
        if (table is None) == (table_file is None):
            raise ConfigError(f"--kind {kind} needs exactly one of --table NAME (from the store) or "
                              "--table-file FILE")
        if table_file is not None:
            tables = [LatencyTable.read(table_file)]
        else:
            from tailorkit.profiler.store import TableStore

            names = [n.strip() for n in (table or "").split(",") if n.strip()]
            if not names:
                raise ConfigError("--table names no table")
            if kind == "lut" and len(names) != 1:
                raise ConfigError("--kind lut takes one --table")
            config = load_config(config_path)
            with TableStore(db or config.store_url, create=False) as store:
                tables = [store.table(n, device=device) for n in names]
            fingerprints = {t.device.fingerprint for t in tables if t.device is not None}
            if len(fingerprints) > 1:
                raise ConfigError("the tables were measured on different devices; a kernel model is per device: "
                                  "pick one with --device or train one per device")
        space_name = tables[0].space or "ofa-mbv3"
        if kind == "lut":
            predictor = LutSumPredictor(tables[0], space=space_name, interpolate=interpolate)
            what = f"a lookup-table predictor over {len(tables[0])} ops" + (
                " (missing ops interpolated)" if interpolate else "")
        else:
            err.print(f"[dim]fitting kernel-level regressors on {sum(map(len, tables))} measured ops…[/dim]")
            predictor = KernelPredictor(space=space_name, seed=seed,
                                        device=tables[0].device.name if tables[0].device else device)
            predictor.fit_table(tables)
            what = "a kernel-level predictor (" + ", ".join(f"{n} {t}" for t, n in predictor.n_train_.items()) + ")"
        predictor.save(output)
        out.print(f"saved {what} to {output}")
        return
    if kind == "model":
        kind = "auto"
    if csv is None or target is None or encoding is None:
        raise ConfigError(f"--kind {kind} needs --csv FILE --target COLUMN --encoding NAME")
    data = read_csv_dataset(csv, encoding)
    y = data.y(target)
    train = _rows(rows, len(data))
    common = {"space": encoding, "encoding": encoding, "device": target, "seed": seed}
    candidates = model_candidates(encoding, seed=seed, space=encoding, device=target)
    if kind == "auto":
        err.print(f"[dim]choosing among additive models and gbm on a fifth of {train.size} rows…[/dim]")
        predictor = fit_best(candidates, data.X[train], y[train], seed=seed)
    elif kind == "additive":
        predictor = candidates[0]  # the encoding's main additive model
    elif kind == "ridge":
        predictor = RidgePredictor(features="hat" if encoding == "hat" else "raw", **common)
    elif kind == "gbm":
        predictor = GBMPredictor(**common)
    elif kind == "mlp":
        predictor = MLPPredictor(ensemble=3, **common)
    elif kind == "hat-mlp":
        predictor = MLPPredictor.hat_preset(latency_norm=float(np.median(y[train])), **common)
    else:
        names = [d.strip() for d in (meta_devices or "").split(",") if d.strip()]
        if len(names) < 2:
            raise ConfigError("--kind fewshot needs --meta-devices with at least two known device columns")
        meta = np.setdiff1d(_rows(meta_rows, len(data)), train) if meta_rows else np.setdiff1d(
            np.arange(len(data)), train)
        preset = {"nb201": {"group": 5, "tau": 0.01}, "fbnet": {"tau": 0.0}}.get(encoding, {})
        predictor = FewShotPredictor(space=encoding, encoding=encoding, device=target, **preset)
        predictor.meta_fit(data.X[meta], {d: data.y(d)[meta] for d in names})
    if kind != "auto":
        err.print(f"[dim]training {kind} on {train.size} rows of {csv}…[/dim]")
        predictor.fit(data.X[train], y[train])
    predictor.save(output)
    fit = evaluate(y[train], predictor.predict(data.X[train]))
    chosen = ""
    if kind == "auto":  # which candidate won: on NB201, the live-edge features mean the device drops dead edges
        extra = getattr(predictor, "extra", None)
        chosen = f" (chose {predictor.kind}{f' + {extra} features' if extra else ''})"
    out.print(f"saved {kind} predictor{chosen} for {target} ({encoding}) to {output}; on its training rows: "
              f"±10 % {fit['acc10']:.1f} %, Spearman {fit['spearman']:.3f}")


@predictor_app.command("sample")
def predictor_sample(
    output: Annotated[Path, typer.Option("-o", "--output", help="Kernel-level predictor file to write (.tlp).")],
    device: DeviceOpt = "cpu",
    space: Annotated[str, typer.Option(help="Space whose kinds of op to sample around.")] = "ofa-mbv3",
    width: Annotated[float, typer.Option(help="Width multiplier of the space's seed ops.")] = 1.0,
    resolutions: Annotated[str, typer.Option(help="Comma-separated resolutions of the seed ops.")] = "160",
    table: Annotated[str, typer.Option(help="Store table the sampled ops are measured into (reruns resume "
                                            "and reuse what it holds).")] = "kernel-samples",
    rounds: Annotated[int, typer.Option(help="Sampling rounds after the first measurements.")] = 3,
    per_round: Annotated[int, typer.Option(help="Ops measured per round.")] = 16,
    initial: Annotated[int, typer.Option(help="Random ops measured first when the table is empty.")] = 32,
    candidates: Annotated[int, typer.Option(help="Candidate pool size (other input sizes and widths).")] = 1500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    db: DbOpt = None,
    warmup: WarmupOpt = None, runs: RunsOpt = None, threads: ThreadsOpt = None, number: NumberOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Kernel-level predictor by adaptive sampling: measure single ops where the model is least sure, refit."""
    from tailorkit.predictors import KernelPredictor
    from tailorkit.predictors.kernel import SamplingRound, adaptive_sample, perturbed_ops, store_measurer
    from tailorkit.profiler.api import buildable_space, open_device
    from tailorkit.profiler.store import TableStore
    from tailorkit.profiler.tables import TableProgress

    if rounds < 0 or per_round < 1 or initial < 1 or candidates < per_round:
        raise ConfigError("--rounds >= 0, --per-round >= 1, --initial >= 1 and --candidates >= --per-round, please")
    try:
        res = [int(r) for r in resolutions.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--resolutions {resolutions!r} must be integers like 160,224") from None
    space_obj = buildable_space(space, width)
    seeds = [op for r in res for op in space_obj.all_ops(r)]
    if not seeds:
        raise ConfigError("--resolutions names no resolution")
    config = load_config(config_path)
    settings = _settings(config, device, warmup=warmup, runs=runs, threads=threads, number=number)
    rng = np.random.default_rng(seed)
    pool = seeds + perturbed_ops(seeds, rng, candidates)
    dev = open_device(device, config)
    with TableStore(db or config.store_url) as store, dev, Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, transient=True) as bar:
        task = bar.add_task("measuring ops", total=None)

        def on_op(event: TableProgress) -> None:
            bar.update(task, total=event.total, completed=event.already + event.done)

        def on_round(step: SamplingRound) -> None:
            err.print(f"round {step.round}: measured {step.picked} ops with spread {step.picked_uncertainty:.3f} "
                      f"(pool mean {step.mean_uncertainty:.3f}); {step.measured} ops in all")

        measure = store_measurer(dev, store, table, settings, progress=on_op)
        info = dev.info(settings)
        known = store.measured_keys(table, info.fingerprint, settings.fingerprint)
        start = store.table(table, device=info.fingerprint, settings=settings.fingerprint).entries if known else {}
        predictor = KernelPredictor(space=space, seed=seed, device=info.name)
        history = adaptive_sample(predictor, pool, measure, rounds=rounds, per_round=per_round,
                                  initial={k: v.mean for k, v in start.items()}, initial_random=initial, seed=seed,
                                  progress=on_round)
    predictor.save(output)
    measured = sum(predictor.n_train_.values())
    out.print(f"saved a kernel-level predictor fitted on {measured} ops of table {table} to {output}"
              + (f" after {len(history)} sampling rounds" if history else ""))


@predictor_app.command("calibrate")
def predictor_calibrate(
    predictor: Annotated[Path, typer.Argument(help="Lookup-table predictor (.tlp from --kind lut).")],
    device: DeviceOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Calibrated predictor file (.tlp).")],
    space: Annotated[str, typer.Option(help="Space of the table.")] = "ofa-mbv3",
    width: WidthOpt = 1.0,
    n: Annotated[int, typer.Option("--n", help="Whole models to measure (smallest, largest, and spread "
                                               "between); 0 with --stored fits on stored ones only.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    rounds: Annotated[int, typer.Option(min=1, help="Measure every model this many times, round-robin, and keep "
                                                     "each one's median (robust to slow episodes).")] = 3,
    stored: Annotated[bool, typer.Option(help="Also fit on the whole models measured on this device before "
                                              "(`tailor export --refit`).")] = False,
    reference: Annotated[bool, typer.Option(
        "--reference/--no-reference", help="Measure each model in alternation with the space's smallest subnet "
                                           "and keep that speed reference in the predictor, so later closed-loop "
                                           "measurements can be read at the calibration's machine speed.")] = True,
    classes: Annotated[int | None, typer.Option(
        "--classes", min=1, help="Classifier of the measured models: calibrate with the head the predictions are "
                                 "for (10 for the digits supernets' subnets; the table must hold it) [the space's: "
                                 "1000].")] = None,
    by_size: Annotated[bool, typer.Option(
        "--by-size/--single-line", help="Also fit a multiplier per output size of the ops (ridge-shrunk to the "
                                        "line; from 4 models on), or only the line.")] = True,
    db: DbOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Measure N whole subnets end to end on the device and fit the table's linear correction a * sum + b (the
    gap between op sums and real runs: fusion, layout changes, caches), with a multiplier per output size."""
    from tailorkit.predictors import load_predictor
    from tailorkit.predictors.lut import (
        LutSumPredictor,
        calibrate_against_reference,
        calibration_archs,
        measure_and_correct,
    )
    from tailorkit.profiler.api import profile, profile_archs_paired
    from tailorkit.search.api import with_classes

    config = load_config(config_path)
    config.device(device)
    pred = load_predictor(predictor, space=space)
    if not isinstance(pred, LutSumPredictor):
        raise ConfigError(f"{str(predictor)!r} is a {pred.kind} predictor; calibration is for lookup tables")
    pred.by_size = by_size
    if pred.device is not None and pred.device != device:
        raise ConfigError(f"{str(predictor)!r} holds latencies of device {pred.device!r}, not {device!r}")
    space_obj = with_classes(_space(space, width), classes)
    known = _stored_models(space_obj, device, db or config.store_url) if stored else {}
    covered = set(pred.covered_resolutions(space_obj))
    from_store = {key: space_obj.arch_from_dict(json.loads(key)) for key in known}
    outside = {k for k, a in from_store.items() if getattr(a, "r", None) not in covered}
    if outside:
        err.print(f"note: {len(outside)} stored model(s) run at resolutions the table does not cover "
                  f"({sorted(covered)}); left out", highlight=False)
        known = {k: v for k, v in known.items() if k not in outside}
    if n == 0 and len(known) < 2:
        raise ConfigError(f"--n 0 needs at least 2 stored whole-model measurements on {device!r}; found "
                          f"{len(known)} (export with --device {device} --refit to add them)")
    if stored and reference:
        if n:
            err.print("note: stored whole models were measured without a speed reference, so this calibration "
                      "keeps none (as with --no-reference)", highlight=False)
        reference = False
    archs = calibration_archs(space_obj, pred, n, seed) if n else []
    settings = config.settings(device if device in config.devices else None)
    ref_arch = space_obj.smallest(min(covered)) if reference else None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:
        task = bar.add_task("measuring whole models" + (" against a reference" if reference else ""),
                            total=len(archs) * rounds)

        def measure(arch: Any) -> float:
            ms = profile(space_obj.build(arch), device, settings=settings, config=config, as_exported=True,
                         input_shapes={"input": space_obj.input_shape(arch)}).latency.mean
            bar.advance(task)
            return ms

        def measure_pair(arch: Any) -> tuple[float, float]:
            paired = profile_archs_paired(space_obj, arch, ref_arch, device, settings=settings, config=config)
            bar.advance(task)
            return paired.ratio, float(paired.reference.median or paired.reference.mean)

        stored_archs = [from_store[k] for k in known]
        stored_ms = dict(zip(map(id, stored_archs), known.values(), strict=True))
        if ref_arch is not None:
            sums, measured = calibrate_against_reference(pred, space_obj, archs, ref_arch, measure_pair,
                                                         rounds=rounds)
        else:
            sums, measured = measure_and_correct(pred, space_obj, archs + stored_archs,
                                                 lambda a: stored_ms[id(a)] if id(a) in stored_ms else measure(a),
                                                 rounds=rounds)
    if known:
        out.print(f"{len(known)} whole model(s) from the store, {len(archs)} measured now", highlight=False)
    fitted = archs if ref_arch is not None else archs + stored_archs
    corrected = pred.predict(space_obj.op_counts(space_obj.to_array(fitted), pred.keys_))
    table = Table("table sum (ms)", "measured (ms)", "corrected (ms)", "error raw", "error corrected")
    for s_, m_, c_ in zip(sums, measured, corrected, strict=True):
        table.add_row(f"{s_:.3f}", f"{m_:.3f}", f"{c_:.3f}", f"{100 * (s_ - m_) / m_:+.1f} %",
                      f"{100 * (c_ - m_) / m_:+.1f} %")
    out.print(table)
    if pred.reference_ is not None:
        ref = pred.reference_
        out.print(f"speed reference: the smallest subnet, {ref['ms']:.4g} ms (median over the calibration; its "
                  f"spread {100 * ref['spread']:.0f} %); the measured column is each model's ratio to it × "
                  f"{ref['ms']:.4g} ms", highlight=False)
    pred.save(output)
    sizes = ", ".join(f"{g} ×{m:.3f}" for g, m in sorted(pred.size_scale_.items()) if abs(m - 1) > 5e-4)
    out.print(f"correction {pred.coef_[0]:.4f} * sum {pred.coef_[1]:+.4f} ms"
              + (f", the entries of each output size scaled first ({sizes})" if sizes else "")
              + f"; saved to {output}", highlight=False)


def _print_speed_reference(measured: Mapping[str, Any]) -> None:
    ref = measured.get("speed_reference")
    if not ref:
        return
    err_txt = f", error {ref['error_pct']:+.1f} %" if ref.get("error_pct") is not None else ""
    out.print(f"at the calibration's machine speed: {ref['latency_ms']:.4g} ms{err_txt} (the speed reference ran "
              f"{ref['now_ms']:.4g} ms now against {ref['calibration_ms']:.4g} ms at calibration: "
              f"{ref['slowdown']:.2f}×; ratio {ref['ratio']:.4g} ± {100 * ref['ratio_spread'] / 2:.1f} % over "
              f"{ref['pairs']} alternations)", highlight=False)


def _stored_models(space: Any, device: str, url: str) -> dict[str, float]:
    """Whole-model latencies (arch JSON → mean ms) stored for ``device`` by `tailor export --refit`."""
    from tailorkit.profiler.api import models_table_name
    from tailorkit.profiler.store import TableStore

    name = models_table_name(space.name, space.width)
    with TableStore(url, create=False) as store:
        if not any(v.device_name == device for v in store.variants(name)):
            return {}
        table = store.table(name, device=device)  # several settings for one device: an error naming them
    return {key: lat.mean for key, lat in table.entries.items()}


@predictor_app.command("eval")
def predictor_eval(
    predictor_file: Annotated[Path, typer.Argument(help="A .tlp predictor.")],
    csv: Annotated[Path | None, typer.Option(help="CSV with the same encoding and the target column.")] = None,
    target: Annotated[str | None, typer.Option(help="Latency column [the predictor's device].")] = None,
    rows: Annotated[str | None, typer.Option(help="Rows to evaluate on: 900: or 3,17,42 [all].")] = None,
    table_file: Annotated[Path | None, typer.Option(help="kernel: measured op table to compare with, per op.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """RMSE, MAPE, ±5 % / ±10 % accuracy, Spearman ρ and Kendall τ on measured latencies."""
    from tailorkit.predictors import KernelPredictor, evaluate, load_predictor
    from tailorkit.predictors.datasets import read_csv_dataset
    from tailorkit.predictors.kernel import table_rows

    predictor = load_predictor(predictor_file)
    if isinstance(predictor, KernelPredictor):
        if table_file is None or csv is not None:
            raise ConfigError(f"{predictor_file}: a kernel predictor is evaluated per op: --table-file FILE")
        ops, y_ops = table_rows(LatencyTable.read(table_file))
        metrics = evaluate(y_ops, predictor.predict_ops(ops))
        column, source, unit = "mean", table_file.name, "ops"
    else:
        if predictor.encoding is None or predictor.kind == "lut" or csv is None or table_file is not None:
            raise ConfigError(f"{predictor_file}: a {predictor.kind} predictor is evaluated on "
                              + ("whole models (the benchmark measures them)" if predictor.kind == "lut"
                                 else "a CSV: --csv FILE"))
        data = read_csv_dataset(csv, predictor.encoding)
        column = target or predictor.device  # type: ignore[assignment]
        if column is None:
            raise ConfigError("say which column holds the latencies: --target COLUMN")
        y = data.y(column)
        selected = _rows(rows, len(data))
        metrics = evaluate(y[selected], predictor.predict(data.X[selected]))
        source, unit = csv.name, "archs"
    if as_json:
        print(json.dumps({"predictor": str(predictor_file), "target": column, **metrics}))
        return
    table = Table(title=f"{predictor.kind} predictor on {source}:{column} ({int(metrics['n'])} {unit})",
                  header_style="bold")
    for name in ("RMSE ms", "MAPE %", "±5 %", "±10 %", "Spearman ρ", "Kendall τ"):
        table.add_column(name, justify="right")
    table.add_row(f"{metrics['rmse']:.4f}", f"{metrics['mape']:.2f}", f"{metrics['acc5']:.1f}",
                  f"{metrics['acc10']:.1f}", f"{metrics['spearman']:.4f}", f"{metrics['kendall']:.4f}")
    out.print(table)


@predictor_app.command("predict")
def predictor_predict(
    predictor_file: Annotated[Path, typer.Argument(help="A .tlp predictor.")],
    arch: Annotated[list[str], typer.Option(help="Arch: NB201 string, FBNet indices, OFA JSON, HAT features; "
                                                 "repeatable.")],
    width: Annotated[float, typer.Option(help="lut/kernel on ofa-mbv3: the width multiplier.")] = 1.0,
) -> None:
    """Predicted latency (ms) of one or more archs."""
    from tailorkit.predictors import KernelPredictor, LutSumPredictor, load_predictor
    from tailorkit.predictors.datasets import encode_archs
    from tailorkit.spaces import OFAMobileNetV3Space

    predictor = load_predictor(predictor_file)
    if isinstance(predictor, (LutSumPredictor, KernelPredictor)):
        if predictor.space not in (None, "ofa-mbv3"):
            raise ConfigError(f"{predictor_file} holds ops of space {predictor.space!r}; whole archs can be "
                              "predicted for ofa-mbv3")
        space = OFAMobileNetV3Space(width=width)
        values = predictor.predict_archs(space, encode_archs("ofa-mbv3", arch).astype(np.int64))
    else:
        values = predictor.predict(encode_archs(predictor.encoding or "", arch))
    for text, ms in zip(arch, values, strict=True):
        out.print(f"{ms:.4f} ms  {text}", highlight=False)


# -------------------------------------------------------------------------------------------------- search


@app.command("search")
def search_cmd(
    space: Annotated[str, typer.Option(help="Search space (`tailor space list`).")],
    predictor: Annotated[str, typer.Option(help="Latency predictor file (.tlp from `tailor predictor train`), or "
                                                "help:DEVICE for NAS-Bench-201's measured HELP column.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="SearchResult JSON file.")],
    latency_ms: Annotated[float | None, typer.Option("--latency-ms", help="Target latency T in ms.")] = None,
    latency_ratio: Annotated[float | None, typer.Option(
        "--latency-ratio", help="Target as a share of the largest arch's predicted latency (ofa-mbv3, spos), "
                                "instead of --latency-ms.")] = None,
    strategy: Annotated[str, typer.Option(help="evolution, random, rl, nsga2 or ddpg (AMC's agent, made for "
                                               "`tailor prune`).")] = "evolution",
    reward: Annotated[str, typer.Option(help="mnasnet-soft, mnasnet-hard, cap (hard latency limit, needs "
                                             "--accuracy) or pareto (with nsga2).")] = "mnasnet-soft",
    accuracy: Annotated[Path | None, typer.Option(help="Accuracy predictor (.tlp from `tailor supernet "
                                                       "accuracy`); without it the search is latency-only.")] = None,
    budget: Annotated[int, typer.Option(help="Evaluations.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same search).")] = 0,
    width: WidthOpt = 1.0,
    preset: Annotated[str | None, typer.Option(help="Evolution preset: ofa, hat or spos [ofa].")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="Measure the winner on this device "
                                               "(closed loop); the predictor must be for it.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint file: written during the search, resumed "
                                                         "when it exists.")] = None,
    export: Annotated[str | None, typer.Option(help="Export the winner (onnx or tflite) into the folder "
                                                    "<output>-<format>/, as `tailor export` does.")] = None,
    supernet: Annotated[Path | None, typer.Option(help="With --export: supernet checkpoint with the weights.")] = None,
    classes: Annotated[int | None, typer.Option(
        "--classes", min=1, help="Classifier of the searched model (10 for the digits supernets; the table must "
                                 "hold it, as `tailor table build` measures) [the space's: 1000].")] = None,
    train_epochs: Annotated[int, typer.Option(help="With --export: epochs on digits (fine-tune, or train from "
                                                   "scratch without --supernet).")] = 0,
    config_path: ConfigOpt = None,
) -> None:
    """Hardware-aware architecture search against a latency predictor, then the winner measured on the device."""
    from tailorkit.search.api import build_best, measure_result, plan_search
    from tailorkit.search.rewards import REWARD_NAMES
    from tailorkit.search.specialize import ExportOptions, export_arch, predicted_for

    if reward not in REWARD_NAMES:
        raise ConfigError(f"unknown reward {reward!r}; known: {', '.join(REWARD_NAMES)}")
    export_options = ExportOptions(fmt=export, supernet=supernet, train_epochs=train_epochs) \
        if export is not None else None  # bad formats and missing weights fail before the search runs
    if export_options is not None:
        export_options.require_weights()
        from tailorkit.export.manifest import check_output_dir
        from tailorkit.search.supernet import read_config

        check_output_dir(output.with_name(f"{output.stem}-{export}"))
        if supernet is not None:
            read_config(supernet)  # a missing checkpoint fails now, not after the search
    if output.is_dir():
        raise ConfigError(f"output {str(output)!r} is a directory; give a .json file")
    config = load_config(config_path)
    if device is not None:
        config.device(device)  # an unknown device fails before the search runs
    plan = plan_search(space, target_ms=latency_ms, target_ratio=latency_ratio, latency=predictor,
                       accuracy=accuracy, strategy=strategy, reward=reward, budget=budget, seed=seed, width=width,
                       preset=preset, device=device, checkpoint=checkpoint, classes=classes)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[best]}"), console=err, transient=False) as bar:
        task = bar.add_task("search", total=budget, best="")

        def on_progress(p: Any) -> None:
            bar.update(task, completed=p.evaluated, best=f"best reward {p.best_reward:.4f}")

        result, _hist = plan.run(on_progress)
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False)
    best = result.best
    out.print(f"best of {result.evaluations} ({result.evaluations_per_s:,.0f} evaluations/s): reward "
              f"{_fmt(best['reward'], 4)}, predicted latency {best['latency_ms']:.4g} ms"
              + (f", predicted accuracy {best['accuracy']:.4f}" if best["accuracy"] is not None else ""),
              highlight=False)
    print(json.dumps(best["arch"]))
    if device is not None:
        result = measure_result(result, device, config=config)
        m = result.measured or {}
        out.print(f"measured on {m['device']}: {m['latency_ms']['mean']:.4g} ms (predicted {m['predicted_ms']:.4g} "
                  f"ms, error {m['error_pct']:+.1f} %)", highlight=False)
        _print_speed_reference(m)
    result.save(output)  # first: a failed export must not cost the search
    out.print(f"search result saved to {output}")
    if export_options is not None:
        folder = output.with_name(f"{output.stem}-{export_options.fmt}")
        space_obj, arch_obj = build_best(result)
        manifest = export_arch(space_obj, arch_obj, folder, export_options,
                               source={"kind": "search", "path": str(output)},
                               predicted=predicted_for(result, export_options), config=config,
                               progress=lambda m: err.print(f"[dim]…[/dim] {escape(m)}"))
        result = result.with_changes(export={
            "format": manifest.format, "path": str(folder / manifest.model_file()),
            "sha256": manifest.files[0]["sha256"], "manifest": str(folder / "manifest.json"),
            "weights": manifest.weights["kind"]})
        _print_manifest(manifest, folder)
        result.save(output)


# --------------------------------------------------------------------------------------------------- prune


@app.command("prune")
def prune_cmd(
    supernet: Annotated[Path, typer.Option(help="Supernet checkpoint folder (`tailor supernet train`): the "
                                                "subnet's weights.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Prune result JSON; the pruned weights go beside "
                                                                "it as .npz.")],
    result: Annotated[Path | None, typer.Option(help="Prune the winner of this search result (ofa-mbv3).")] = None,
    arch: Annotated[str | None, typer.Option(help="Or the ofa-mbv3 arch to prune: JSON, or @FILE.")] = None,
    width: WidthOpt = 1.0,
    predictor: Annotated[Path | None, typer.Option(help="Per-op latencies: a lookup-table or kernel-level .tlp "
                                                        "(a table needs every pruned width; see --device).")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="Measure every op the pruning can use on "
                                               "this device into the store (reusing what is there) and use "
                                               "those latencies.")] = None,
    latency_ms: Annotated[float | None, typer.Option("--latency-ms", help="Latency budget in ms.")] = None,
    latency_ratio: Annotated[float | None, typer.Option(
        "--latency-ratio", help="Budget as a share of the unpruned subnet's predicted latency, instead of "
                                "--latency-ms.")] = None,
    strategy: Annotated[str, typer.Option(help="ddpg (AMC's agent), evolution, random or rl.")] = "ddpg",
    episodes: Annotated[int, typer.Option(help="Prunings evaluated (digits validation accuracy each).")] = 300,
    finetune_epochs: Annotated[int, typer.Option(help="Epochs of fine-tuning the winner on digits.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same pruning).")] = 0,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint file: written during the search, resumed "
                                                         "when it exists.")] = None,
    db: DbOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Channel pruning of a trained subnet under a latency budget (AMC): which share of each block's middle
    channels to keep, scored by digits accuracy; the winner fine-tuned and saved for `tailor export`."""
    if (result is None) == (arch is None):
        raise ConfigError("give the subnet to prune: --result SEARCH.json or --arch")
    if (predictor is None) == (device is None):
        raise ConfigError("give the latencies: --predictor FILE.tlp, or --device NAME to measure them")
    if (latency_ms is None) == (latency_ratio is None):
        raise ConfigError("give the budget: --latency-ms or --latency-ratio")
    if latency_ratio is not None and not 0 < latency_ratio <= 1:
        raise ConfigError(f"--latency-ratio must be in (0, 1], got {latency_ratio}")
    if strategy not in ("ddpg", "evolution", "random", "rl"):
        raise ConfigError(f"unknown pruning strategy {strategy!r}; known: ddpg, evolution, random, rl")
    if output.suffix != ".json" or output.is_dir():
        raise ConfigError(f"output {str(output)!r} must be a .json file (the weights go beside it as .npz)")
    from tailorkit.search.api import build_best, load_search_result
    from tailorkit.search.prune import PruningSpace, measured_latency, predictor_latency, prune, write_result
    from tailorkit.search.supernet import read_config
    from tailorkit.spaces.base import DIGITS_CLASSES

    sn = read_config(supernet)  # a missing checkpoint fails now, not after measuring
    if result is not None:
        space_obj, arch_obj = build_best(load_search_result(result))
    else:
        space_obj = _space("ofa-mbv3", width)
        arch_obj = _read_arch(space_obj, arch or "")
    # the pruned network ships with the supernet's digits classifier, so its latency is priced with that head
    # (ImageNet's 1000-class one costs ~4 % of the unpruned subnet on our CPU, 8 % of a half-latency pruning)
    pruning = PruningSpace(space_obj, arch_obj, num_classes=DIGITS_CLASSES)
    if sn.space != space_obj.name or float(sn.width) != float(space_obj.width):
        raise ConfigError(f"supernet {str(supernet)!r} is {sn.space} width {sn.width}; the subnet is "
                          f"{space_obj.name} width {space_obj.width}")
    config = load_config(config_path)
    if predictor is not None:
        from tailorkit.predictors import load_predictor

        latency = predictor_latency(pruning, load_predictor(predictor), what=f"predictor {str(predictor)!r}")
    else:
        from tailorkit.profiler.api import open_device
        from tailorkit.profiler.store import TableStore
        from tailorkit.profiler.tables import TableProgress

        dev = open_device(device or "", config)
        settings = _settings(config, dev.name)
        with TableStore(db or config.store_url) as store, dev, \
                Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), console=err, transient=False) as bar:
            task = bar.add_task("measuring the pruning's ops", total=None)

            def on_measure(event: TableProgress) -> None:
                bar.update(task, total=event.total, completed=event.already + event.done)

            latency = measured_latency(pruning, dev, store, settings, progress=on_measure)
        cal = latency.calibration or {}
        if cal:
            out.print(f"table calibrated on whole networks: {cal['scale']:.3f} x sum {cal['offset_ms']:+.3f} ms "
                      f"(unpruned {cal['measured_ms']['unpruned']:.3f} ms measured vs table sum "
                      f"{cal['table_sum_ms']['unpruned']:.3f}; smallest pruning {cal['measured_ms']['smallest']:.3f} "
                      f"vs {cal['table_sum_ms']['smallest']:.3f})", highlight=False)
    full = float(latency(np.array([(8,) * pruning.n_blocks]))[0])
    target = latency_ms if latency_ms is not None else full * float(latency_ratio or 1.0)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[best]}"), console=err, transient=False) as bar:
        task = bar.add_task(f"prune ({strategy})", total=episodes, best="")

        def on_progress(p: Any) -> None:
            if p.phase == "fine-tune":
                bar.update(task, description=f"fine-tuning {finetune_epochs} epochs")
            else:
                bar.update(task, completed=p.episodes, best=f"best val accuracy {p.best_accuracy:.4f}")

        res, net = prune(space_obj, arch_obj, supernet, latency, target_ms=target, strategy=strategy,
                         episodes=episodes, seed=seed, finetune_epochs=finetune_epochs, progress=on_progress,
                         checkpoint=checkpoint)
    res = write_result(res, output, net)
    acc = res.accuracy
    out.print(f"kept eighths {res.keep_eighths} → middle widths {res.widths} (of {res.base_widths})",
              highlight=False)
    out.print(f"predicted latency {res.predicted['latency_ms']:.4g} ms (budget {target:.4g} ms; unpruned "
              f"{full:.4g} ms); parameters {res.weights['parameters']:,} of {res.weights['base_parameters']:,}",
              highlight=False)
    out.print(f"digits accuracy val/test: unpruned {acc['base']['val']:.4f}/{acc['base']['test']:.4f}, pruned "
              f"{acc['searched']['val']:.4f}/{acc['searched']['test']:.4f}, fine-tuned "
              f"{acc['fine_tuned']['val']:.4f}/{acc['fine_tuned']['test']:.4f}", highlight=False)
    if res.uniform is not None:
        u = res.uniform
        out.print(f"uniform pruning at the same budget ({u['keep_eighths'][0]}/8 everywhere, "
                  f"{u['latency_ms']:.4g} ms): val {u['accuracy_val']:.4f}, test {u['accuracy_test']:.4f} "
                  "(before fine-tuning)", highlight=False)
    out.print(f"prune result saved to {output} (weights {output.with_suffix('.npz').name}); export it with "
              f"`tailor export {output} -o DIR`", highlight=False)


# -------------------------------------------------------------------------------------------------- export


@app.command("export")
def export_cmd(
    result: Annotated[Path | None, typer.Argument(help="Result JSON from `tailor search` or `tailor prune` (or give "
                                                      "--space and --arch).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output folder (created; must be empty "
                                                                    "unless --force).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx, tflite or tvm (a library for --device, which must be "
                                                      "a tvm device).")] = "onnx",
    supernet: Annotated[Path | None, typer.Option(help="Supernet checkpoint folder: the subnet's weights.")] = None,
    train_epochs: Annotated[int, typer.Option(help="Epochs on digits: fine-tunes the extracted subnet, or trains "
                                                   "it from scratch without --supernet.")] = 0,
    device: Annotated[str | None, typer.Option("--device", "-d", help="Measure the exported file on this device "
                                                                     "(it must run the format).")] = None,
    quantize: Annotated[str | None, typer.Option(help="int8: static quantization calibrated on digits.")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Run the file in its runtime on the digits "
                                                                      "test split and compare with torch.")] = True,
    min_agreement: Annotated[float | None, typer.Option(help="Least top-1 agreement with torch [0.99; int8 "
                                                             "0.95].")] = None,
    simplify: Annotated[str, typer.Option(help="ONNX simplifier: onnxsim, onnxslim or none.")] = "onnxsim",
    refit: Annotated[bool, typer.Option(help="Store the measured latency (whole-model table) so the next "
                                             "`predictor calibrate --stored` learns from it.")] = False,
    space: Annotated[str | None, typer.Option(help="Space of --arch (without a result file).")] = None,
    arch: Annotated[str | None, typer.Option(help="Arch JSON, or @FILE (with --space).")] = None,
    width: WidthOpt = 1.0,
    predictor: Annotated[Path | None, typer.Option(help="With --arch: latency predictor for the predicted "
                                                        "latency.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for training and calibration sampling.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace a non-empty output folder (only once the export "
                                             "succeeded).")] = False,
    db: DbOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """The searched model with trained weights as an ONNX or TFLite file, verified in its runtime, measured on a
    device, with a manifest (out/manifest.json)."""
    from tailorkit.search.prune import is_prune_result
    from tailorkit.search.specialize import (
        ExportOptions,
        export_arch,
        export_prune_result,
        export_search_result,
        predict_arch,
    )

    if output is None:
        raise ConfigError("give the output folder with -o/--output")
    if (result is None) == (arch is None):
        raise ConfigError("give either a search result file or --space and --arch")
    if arch is not None and space is None:
        raise ConfigError("--arch needs --space")
    if result is None and predictor is None and device is not None:
        err.print("note: without --predictor the manifest has no predicted latency to compare the measurement "
                  "with", highlight=False)
    options = ExportOptions(fmt=fmt, quantize=quantize, device=device, verify=verify,
                            simplifier=None if simplify == "none" else simplify, supernet=supernet,
                            train_epochs=train_epochs, seed=seed, min_agreement=min_agreement, refit=refit,
                            store_url=db, force=force)
    config = load_config(config_path)

    def say(message: str) -> None:
        err.print(f"[dim]…[/dim] {escape(message)}")

    if result is not None and is_prune_result(result):
        manifest = export_prune_result(result, output, options, config=config, progress=say)
    elif result is not None:
        manifest = export_search_result(result, output, options, config=config, progress=say)
    else:
        space_obj = _space(space or "", width)
        arch_obj = _read_arch(space_obj, arch or "")
        predicted = predict_arch(space_obj, arch_obj, predictor) if predictor is not None else None
        manifest = export_arch(space_obj, arch_obj, output, options, source={"kind": "arch"}, predicted=predicted,
                               config=config, progress=say)
    _print_manifest(manifest, output)


def _print_manifest(manifest: Any, folder: Path) -> None:
    entry = manifest.files[0]
    out.print(f"{folder / entry['name']}: {manifest.format}"
              + (f" {manifest.quantize}" if manifest.quantize else "")
              + f", {entry['bytes'] / 1e6:.2f} MB, input {'x'.join(map(str, manifest.input['shape']))}",
              highlight=False)
    acc = manifest.accuracy
    if manifest.verify:
        v = manifest.verify
        out.print(f"digits test accuracy: torch {acc['torch']:.4f}, {manifest.format} runtime {acc['runtime']:.4f}; "
                  f"top-1 agreement {v['top1_agreement']:.4f}, max |diff| {v['max_abs_diff']:.3g}", highlight=False)
    else:
        out.print(f"digits test accuracy (torch): {acc['torch']:.4f}; not verified in the runtime", highlight=False)
    if manifest.simplify:
        s_ = manifest.simplify
        out.print(f"{s_['tool']}: {s_['nodes_before']} → {s_['nodes_after']} nodes", highlight=False)
    predicted = manifest.predicted
    if predicted and predicted.get("note"):
        err.print(f"note: {predicted['note']}", highlight=False)
    if manifest.measured:
        m = manifest.measured
        line = f"measured on {m['device']}: {m['latency_ms']['mean']:.4g} ms"
        if predicted and m.get("error_pct") is not None:
            line += f" (predicted {predicted['latency_ms']:.4g} ms, error {m['error_pct']:+.1f} %)"
        elif m.get("note"):
            line += f" ({m['note']})"
        out.print(line, highlight=False)
        _print_speed_reference(m)
    elif predicted:
        out.print(f"predicted latency {predicted['latency_ms']:.4g} ms ({predicted['source']})", highlight=False)
    if manifest.refit:
        out.print(f"stored in {manifest.refit['table']} of {manifest.refit['store']}", highlight=False)
    out.print(f"manifest: {folder / 'manifest.json'}", highlight=False)


@app.command("verify")
def verify_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder written by `tailor export`.")],
    run: Annotated[bool, typer.Option("--run/--no-run", help="Also rerun the model on the digits test split and "
                                                             "compare with the manifest's accuracy.")] = True,
) -> None:
    """Check an export folder: every file against the manifest's checksums, then the model's accuracy again."""
    from tailorkit.export.manifest import check_files, read_manifest
    from tailorkit.search.specialize import rerun_accuracy

    manifest = read_manifest(folder)
    problems = check_files(folder, manifest)
    if problems:
        raise ConfigError(f"{folder}: " + "; ".join(problems))
    out.print(f"{len(manifest.files)} file(s) match the manifest's checksums", highlight=False)
    if run and manifest.verify:
        recorded = manifest.accuracy.get("runtime")
        if not isinstance(recorded, (int, float)):
            raise ConfigError(f"{folder}: the manifest records no runtime accuracy to compare with")
        accuracy = rerun_accuracy(folder, manifest)
        if round(accuracy, 6) != recorded:
            raise ConfigError(f"{folder}: the model now scores {accuracy:.4f} on the digits test split, the "
                              f"manifest says {recorded:.4f}")
        out.print(f"digits test accuracy {accuracy:.4f} in {manifest.format} runtime, as recorded", highlight=False)


@app.command()
def version() -> None:
    """Print the tailorkit version."""
    out.print(__version__)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(standalone_mode=False)
    except TailorError as exc:
        # plain text: one line, never wrapped or styled, easy to grep in CI logs
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        # by class name: typer >= 0.2x raises them from its own vendored copy of click, not from click
        if any(c.__name__ == "ClickException" for c in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


if __name__ == "__main__":
    main()
