"""Parser for the console output of TFLite's ``benchmark_model`` (what the Android device runs on a phone).

Layouts seen in public outputs (fixtures and their sources: tests/fixtures/README.md):

- older: no line prefix, tab-separated tables with a ``[start]`` column:
  ``[node type] [start] [first] [avg ms] [%] [cdf%] [mem KB] [times called] [Name]``;
- newer: tool lines prefixed ``INFO: `` (tables, ``Timings`` and ``nodes observed`` lines are not), space-aligned
  tables without ``[start]``, XNNPACK rows such as ``Convolution (NHWC, QC8) GEMM`` named
  ``Delegate/Convolution (NHWC, QC8) GEMM:2`` and called more than once per inference;
- Android's benchmark app writes the same lines through logcat (``05-30 13:04:39.021 25935 25935 I tflite  : …``).

A profile has an initialization section (``ModifyGraphWithDelegate``, ``AllocateTensors``) and then "Operator-wise
Profiling Info for Regular Benchmark Runs"; each holds "Run Order", "Top by Computation Time" (the same rows
sorted) and "Summary by node type" tables and a ``Timings (microseconds): count= first= curr= min= max= avg= std=``
line. Times in tables are milliseconds; ``count=`` lines and "Inference timings in us" are microseconds, and large
values come in scientific notation (``avg=2.95034e+06``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tailorkit.core.errors import DeviceError, ModelFormatError
from tailorkit.core.records import Latency, OpLatency

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIXES = (
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+ [VDIWEF] tflite\s*:\s?"),  # logcat (benchmark app)
    re.compile(r"^(?:INFO|WARNING|VERBOSE): "),
)
_COUNT = re.compile(rf"^count=(\d+)((?:\s+\w+={_NUM})*)\s*$")
_TIMINGS = re.compile(rf"^Timings \(microseconds\):\s*count=(\d+)((?:\s+\w+={_NUM})*)\s*$")
_INFERENCE = re.compile(r"^Inference timings in us:\s*(.*)$")
_ROW_TAIL = rf"(?P<first>{_NUM})\s+(?P<avg>{_NUM})\s+(?P<pct>{_NUM})%\s+(?P<cdf>{_NUM})%\s+(?P<mem>{_NUM})\s+" \
            r"(?P<calls>\d+)\s+(?P<name>\S.*?)\s*$"
_ROW_WITH_START = re.compile(rf"^\s*(?P<type>\S.*?)\s+(?P<start>{_NUM})\s+" + _ROW_TAIL)
_ROW = re.compile(r"^\s*(?P<type>\S.*?)\s+" + _ROW_TAIL)
_SUMMARY_ROW = re.compile(rf"^\s*(?P<type>\S.*?)\s+(?P<count>\d+)\s+(?P<avg>{_NUM})\s+(?P<pct>{_NUM})%\s+"
                          rf"(?P<cdf>{_NUM})%\s+(?P<mem>{_NUM})(?:\s+(?P<calls>\d+))?\s*$")
_FAILURES = ("Benchmarking failed", "Segmentation fault", "Aborted", "Failed to load model", "Failed to allocate",
             "failed to invoke", "Failed to invoke", "Fatal signal", "Bus error", "Illegal instruction", "Killed")


@dataclass(frozen=True)
class RunTimings:
    """One ``count= first= curr= min= max= avg= std=`` line, in microseconds (``first`` etc. may be absent)."""

    count: int
    values: dict[str, float] = field(default_factory=dict)

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def latency(self) -> Latency:
        avg = self.values.get("avg", self.values.get("curr"))
        if avg is None:
            raise ModelFormatError("benchmark_model timings line has neither avg= nor curr=")
        std = self.values.get("std", 0.0)
        return Latency(mean=avg / 1e3, std=std / 1e3, n=self.count,
                       min=_ms(self.values.get("min")), max=_ms(self.values.get("max")), n_total=self.count)


@dataclass(frozen=True)
class ProfiledOp:
    """One row of a "Run Order" table (ms); ``times_called`` > 1 for delegate kernels that run several times."""

    node_type: str
    name: str
    first_ms: float
    avg_ms: float
    percent: float
    mem_kb: float
    times_called: int
    start_ms: float | None = None


@dataclass(frozen=True)
class NodeTypeSummary:
    node_type: str
    count: int
    avg_ms: float
    percent: float
    times_called: int | None


@dataclass(frozen=True)
class ProfileSection:
    run_order: tuple[ProfiledOp, ...] = ()
    by_node_type: tuple[NodeTypeSummary, ...] = ()
    timings: RunTimings | None = None
    nodes_observed: int | None = None


@dataclass(frozen=True)
class BenchmarkOutput:
    """What one ``benchmark_model`` run printed."""

    warmup: RunTimings | None
    regular: RunTimings | None
    inference_us: dict[str, float]  # Init, First inference, Warmup (avg), Inference (avg)
    init_ms: float | None
    initialization: ProfileSection | None
    profile: ProfileSection | None
    errors: tuple[str, ...] = ()  # ERROR lines of a run that still finished (e.g. a delegate that fell back)

    def latency(self) -> Latency:
        """End-to-end latency of one inference over the regular runs."""
        if self.regular is None:
            raise ModelFormatError("benchmark_model output has no timings of the regular runs")
        return self.regular.latency()

    def op_latencies(self) -> list[OpLatency]:
        """Per-node latency per inference, in run order. ``avg ms`` is per call and ``times called`` per
        inference (an XNNPACK kernel shared by 13 depthwise layers shows 13), so a node costs their product —
        which is how the tool's own ``%`` column adds up to 100."""
        if self.profile is None or not self.profile.run_order:
            raise ModelFormatError("benchmark_model output has no per-op profile (run it with "
                                   "--enable_op_profiling=true)")
        timings = self.profile.timings or self.regular
        runs = max(timings.count if timings else 1, 1)
        return [OpLatency(name=op.name, op_type=op.node_type, provider=_provider(op),
                          latency=Latency(mean=op.avg_ms * op.times_called, std=0.0, n=runs))
                for op in self.profile.run_order]


def _provider(op: ProfiledOp) -> str:
    if op.name.startswith("Delegate/"):
        return "xnnpack"
    if "Delegate" in op.node_type:
        return op.node_type
    return "builtin"


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1e3


def _strip(line: str) -> tuple[str, bool]:
    """The line without its logcat and log-level prefixes, and whether a log-level prefix was there (tables
    are printed without one, so such a line inside a table is an interleaved log message)."""
    line = _PREFIXES[0].sub("", line.rstrip("\r\n"), count=1)
    stripped = _PREFIXES[1].sub("", line, count=1)
    return stripped, stripped != line or line.startswith(("ERROR:", "E ["))


def _pairs(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(rf"(\w+)=({_NUM})", text)}


def parse_benchmark_output(text: str, *, returncode: int | None = None) -> BenchmarkOutput:
    """Parse what ``benchmark_model`` printed. A crashed or failed run is a DeviceError carrying the tool's last
    error lines; output that is not benchmark_model's, or stops before its timings, is a ModelFormatError."""
    lines = [_strip(line) for line in text.splitlines()]
    errors: list[str] = []
    failed = False
    started = False
    counts: list[tuple[str, RunTimings]] = []
    runs_seen = 0  # "Running benchmark for at least …" headers: the first is the warm-up, the second the runs
    inference: dict[str, float] = {}
    init_ms = None
    sections: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    table: str | None = None
    has_start = False
    for raw, logged in lines:
        line = raw.strip()
        if not line:
            table = None
            continue
        if table is not None and logged:
            if line.startswith("ERROR"):
                errors.append(line)
            continue  # a log message printed between table rows
        if table is None:
            # failures are whole tool lines, never parts of op names in a table
            if line.startswith(("ERROR", "E [")):
                errors.append(line)
            if any(line.startswith(f) or line.endswith(f) or line.endswith(f + ".") for f in _FAILURES):
                errors.append(line)
                failed = True
        if line == "STARTING!":
            started = True
            continue
        if line.startswith("Running benchmark for at least"):
            runs_seen += 1
            continue
        if m := _COUNT.match(line):
            counts.append(("warmup" if runs_seen == 1 else "regular", RunTimings(int(m.group(1)),
                                                                               _pairs(m.group(2)))))
            continue
        if m := _INFERENCE.match(line):
            inference = {k.strip(): float(v) for k, v in re.findall(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUM})",
                                                                    m.group(1))}
            continue
        if m := re.match(rf"^Initialized session in ({_NUM})\s*ms", line):
            init_ms = float(m.group(1))
            continue
        if line.startswith("Profiling Info for Benchmark Initialization"):
            current = sections.setdefault("init", {"ops": [], "types": []})
            table = None
            continue
        if line.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
            current = sections.setdefault("regular", {"ops": [], "types": []})
            table = None
            continue
        if line.startswith("=====") and current is not None:
            title = line.strip("= ").lower()
            table = {"run order": "order", "top by computation time": "top", "summary by node type": "summary"}.get(
                title, "other")
            if (table == "order" and current["ops"]) or (table == "summary" and current["types"]):
                # a second report in one section (another subgraph, a delegate's internal report): the first
                # is the model's own
                table = "other"
            continue
        if current is None:
            continue
        if m := _TIMINGS.match(line):
            current.setdefault("timings", RunTimings(int(m.group(1)), _pairs(m.group(2))))
            table = None
            continue
        if m := re.match(r"^(\d+) nodes observed$", line):
            current.setdefault("observed", int(m.group(1)))
            continue
        if line.startswith("[node type]") or line.startswith("[Node type]"):
            has_start = "[start]" in line
            continue
        if table == "order":
            row = (_ROW_WITH_START if has_start else _ROW).match(raw.replace("\t", "  "))
            if row is None:
                if line.startswith("Number of nodes executed"):
                    continue
                raise ModelFormatError(f"benchmark_model output: cannot read the op row {line[:120]!r}")
            current["ops"].append(ProfiledOp(  # type: ignore[union-attr]
                node_type=row["type"].strip(), name=row["name"], first_ms=float(row["first"]),
                avg_ms=float(row["avg"]), percent=float(row["pct"]), mem_kb=float(row["mem"]),
                times_called=int(row["calls"]),
                start_ms=float(row["start"]) if has_start and row["start"] is not None else None))
        elif table == "summary":
            row = _SUMMARY_ROW.match(raw.replace("\t", "  "))
            if row is not None:
                current["types"].append(NodeTypeSummary(  # type: ignore[union-attr]
                    node_type=row["type"].strip(), count=int(row["count"]), avg_ms=float(row["avg"]),
                    percent=float(row["pct"]), times_called=int(row["calls"]) if row["calls"] else None))
    if failed or returncode not in (None, 0):
        detail = "; ".join(errors[-3:]) or f"exit status {returncode}"
        raise DeviceError(f"benchmark_model failed: {detail}")
    if not started and not counts and not sections:
        raise ModelFormatError("this is not benchmark_model output (no STARTING!, timings or profile found)")
    if not counts and not sections:
        raise ModelFormatError("benchmark_model output ends before any timings (truncated, or the run was killed)")
    regular_section = _section(sections.get("regular"))
    if "regular" in sections and regular_section is not None and regular_section.timings is None:
        raise ModelFormatError("benchmark_model output is truncated inside the per-op profile (no Timings line)")
    warmup = next((t for kind, t in counts if kind == "warmup"), None)
    regular = next((t for kind, t in counts if kind == "regular"), None)
    if regular is None and runs_seen >= 1 and not (regular_section and regular_section.timings):
        raise ModelFormatError("benchmark_model output ends after the warm-up, before the timed runs (truncated, "
                               "or the run was killed)")
    if regular is None and regular_section is not None:
        regular = regular_section.timings
    return BenchmarkOutput(warmup=warmup, regular=regular, inference_us=inference, init_ms=init_ms,
                           initialization=_section(sections.get("init")), profile=regular_section,
                           errors=tuple(errors))


def _section(data: dict[str, object] | None) -> ProfileSection | None:
    if data is None:
        return None
    ops: Sequence[ProfiledOp] = data["ops"]  # type: ignore[assignment]
    types: Sequence[NodeTypeSummary] = data["types"]  # type: ignore[assignment]
    return ProfileSection(run_order=tuple(ops), by_node_type=tuple(types),
                          timings=data.get("timings"), nodes_observed=data.get("observed"))  # type: ignore[arg-type]
