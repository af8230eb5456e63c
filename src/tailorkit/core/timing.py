"""The measurement protocols shared by every in-process device: warm up, time, trim, optionally repeat; or
alternate a model with a reference model block by block."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tailorkit.core.errors import DeviceError
from tailorkit.core.records import BenchmarkSettings, Latency, PairedLatency

DEFAULT_PAIRS = 32
# a block lasts about this long: long enough that the caches warm again after the switch, short enough that
# the machine's speed rarely changes inside a pair (it moves within a fraction of a second here)
_BLOCK_MS = 30.0
_MIN_BLOCK = 3
_DROPPED = 2  # samples at the start of each block, still paying for the other model's cache footprint


def time_runs(run_once: Callable[[], object], settings: BenchmarkSettings) -> Latency:
    """Call ``run_once`` ``warmup`` times untimed, then time it ``runs`` times; with ``target_cv``, keep adding
    batches of ``runs`` until the kept samples' CV reaches it or ``sample_limit`` samples exist. The wall-clock
    ``timeout_s`` covers the whole measurement."""
    clock = time.perf_counter_ns
    limit = clock() + int(settings.timeout_s * 1e9)

    warm: list[int] = []
    for _ in range(settings.warmup):
        t0 = clock()
        run_once()
        warm.append(clock() - t0)
        _check_deadline(limit, settings)
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
                _check_deadline(limit, settings)
        latency = Latency.from_samples(samples, settings.outlier, number)
        if settings.target_cv is None or latency.cv <= settings.target_cv or len(samples) >= settings.sample_limit:
            return latency
        batch = min(settings.runs, settings.sample_limit - len(samples))


def _check_deadline(limit_ns: int, settings: BenchmarkSettings) -> None:
    """The whole measurement's wall-clock limit (``timeout_s``), checked between runs."""
    if time.perf_counter_ns() > limit_ns:
        raise DeviceError(f"measurement exceeded its timeout of {settings.timeout_s:g} s")


def auto_number(warmup_ns: list[int], min_sample_ms: float) -> int:
    """Inferences per sample so that a sample lasts at least ``min_sample_ms``, judged from the later half of
    the warm-up (the first runs pay for allocation and caches)."""
    if not warmup_ns or min_sample_ms <= 0:
        return 1
    tail = sorted(warmup_ns[len(warmup_ns) // 2:])
    typical_ms = tail[len(tail) // 2] / 1e6
    return max(1, math.ceil(min_sample_ms / typical_ms)) if typical_ms > 0 else 1


def time_paired(run_target: Callable[[], object], run_reference: Callable[[], object], settings: BenchmarkSettings,
                pairs: int = DEFAULT_PAIRS) -> PairedLatency:
    """Alternate blocks of the reference and the target, ``pairs`` times, after ``warmup`` untimed runs of each;
    a block holds enough samples to last about 30 ms (at least 3) after two dropped ones. ``number`` and
    ``min_sample_ms`` act per model as in :func:`time_runs`; ``runs`` and ``target_cv`` do not apply."""
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be a whole number >= 1, got {pairs!r}")
    clock = time.perf_counter_ns
    limit = clock() + int(settings.timeout_s * 1e9)
    warm: tuple[list[int], list[int]] = ([], [])
    for _ in range(settings.warmup):
        for run, into in ((run_reference, warm[1]), (run_target, warm[0])):
            t0 = clock()
            run()
            into.append(clock() - t0)
        _check_deadline(limit, settings)
    plans = []
    for run, w in ((run_reference, warm[1]), (run_target, warm[0])):
        number = settings.number or auto_number(w, settings.min_sample_ms)
        tail = sorted(w[len(w) // 2:])
        sample_ms = number * tail[len(tail) // 2] / 1e6 if tail else 0.0
        size = max(_MIN_BLOCK, math.ceil(_BLOCK_MS / sample_ms)) if sample_ms > 0 else _MIN_BLOCK
        plans.append((run, number, size))
    blocks: tuple[list[list[float]], list[list[float]]] = ([], [])
    for _ in range(pairs):
        for (run, number, size), into in zip(plans, blocks, strict=True):
            block = []
            for _ in range(_DROPPED + size):
                t0 = clock()
                for _ in range(number):
                    run()
                block.append((clock() - t0) / 1e6 / number)
            into.append(block[_DROPPED:])
        _check_deadline(limit, settings)
    (_, ref_number, _), (_, tgt_number, _) = plans
    return PairedLatency.from_blocks(blocks[1], blocks[0], settings.outlier, tgt_number, ref_number)
