"""The measurement protocol shared by every in-process device: warm up, time, trim, optionally repeat."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tailorkit.core.errors import DeviceError
from tailorkit.core.records import BenchmarkSettings, Latency


def time_runs(run_once: Callable[[], object], settings: BenchmarkSettings) -> Latency:
    """Call ``run_once`` ``warmup`` times untimed, then time it ``runs`` times; with ``target_cv``, keep adding
    batches of ``runs`` until the kept samples' CV reaches it or ``sample_limit`` samples exist. The wall-clock
    ``timeout_s`` covers the whole measurement."""
    clock = time.perf_counter_ns
    start = clock()
    limit = start + int(settings.timeout_s * 1e9)

    def check_timeout() -> None:
        if clock() > limit:
            raise DeviceError(f"measurement exceeded its timeout of {settings.timeout_s:g} s")

    warm: list[int] = []
    for _ in range(settings.warmup):
        t0 = clock()
        run_once()
        warm.append(clock() - t0)
        check_timeout()
    number = settings.number or auto_number(warm, settings.min_sample_ms)
    samples: list[float] = []
    batch = settings.runs
    while True:
        for _ in range(batch):
            t0 = clock()
            for _ in range(number):
                run_once()
            t1 = clock()
            samples.append((t1 - t0) / 1e6 / number)
            if t1 > limit:
                check_timeout()
        latency = Latency.from_samples(samples, settings.outlier, number)
        if settings.target_cv is None or latency.cv <= settings.target_cv or len(samples) >= settings.sample_limit:
            return latency
        batch = min(settings.runs, settings.sample_limit - len(samples))


def auto_number(warmup_ns: list[int], min_sample_ms: float) -> int:
    """Inferences per sample so that a sample lasts at least ``min_sample_ms``, judged from the later half of
    the warm-up (the first runs pay for allocation and caches)."""
    if not warmup_ns or min_sample_ms <= 0:
        return 1
    tail = sorted(warmup_ns[len(warmup_ns) // 2:])
    typical_ms = tail[len(tail) // 2] / 1e6
    return max(1, math.ceil(min_sample_ms / typical_ms)) if typical_ms > 0 else 1
