"""What the host CPU says about itself, read from /proc and /sys where readable (Linux); absent elsewhere."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown cpu"


def affinity() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


def cpu_state(cpus: tuple[int, ...]) -> dict[str, str]:
    """Governor and current frequency of the cores in use, hottest thermal zone; varies run to run."""
    state: dict[str, str] = {}
    governors, freqs = set(), []
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        if (gov := _read(f"{base}/scaling_governor")) is not None:
            governors.add(gov)
        if (freq := _read(f"{base}/scaling_cur_freq")) is not None and freq.isdigit():
            freqs.append(int(freq) / 1000)
    if governors:
        state["governor"] = ",".join(sorted(governors))
    if freqs:
        state["freq_mhz"] = f"{sum(freqs) / len(freqs):.0f}"
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*/temp"):
        raw = _read(str(zone))
        if raw and raw.lstrip("-").isdigit():
            temps.append(int(raw) / 1000)
    if temps:
        state["thermal_c"] = f"{max(temps):.1f}"
    return state


def cpu_properties() -> dict[str, str]:
    props = {"arch": platform.machine(), "logical_cores": str(os.cpu_count() or 0)}
    max_freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq and max_freq.isdigit():
        props["max_freq_mhz"] = f"{int(max_freq) / 1000:.0f}"
    return props
