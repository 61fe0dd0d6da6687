"""Timing, checks, speed-up targets and the task registry.

A task is one function ``task(ctx) -> TaskResult``, registered with ``@register``.
It builds its candidates (the lecture loop, PyTorch's best, makemore_jax), hands
them to ``measure``, and turns the timings into a result with ``result``.

``measure`` interleaves the candidates: every round calls each of them once (a
slow one only in some rounds, spread evenly), rotating who goes first, so that a
machine that slows down mid-run slows every candidate alike. Each candidate is
warmed up before the first round; its first call (compilation included) is
reported on its own and never enters the median. A short candidate is called
twice per round and timed on the second call (see REWARM_BELOW_S).

A task may also hand ``result`` a Timing that is ``missing``, with the reason
(a run that never reached its target within its cap): its candidate row has no
times, and every ratio that needs it has no speed-up, never an invented one,
and counts as missed where it has a target.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("lecture", "best_effort", "package", "probe")
# A call shorter than this is made twice in each round and only the second is
# timed: the first brings the framework's threads and caches back after the other
# framework ran (cross-framework disturbance, 1.5-2x on a 2-core machine).
REWARM_BELOW_S = 0.05


@dataclass
class Candidate:
    """One implementation of a task.

    fn does the whole measured work once and returns only when it is done (JAX
    results blocked on, CUDA synchronised); its return value from the first
    timed call is kept for the checks. warmup, if given, replaces fn for the
    warm-up call (a cheaper run of a slow loop); otherwise fn itself warms up
    and that first call's time is reported as first_call_s, unless the task
    measured it already (e.g. while finding out whether torch.compile works).
    """

    name: str
    label: str
    framework: str
    kind: str
    fn: Callable[[], Any]
    work: int = 1
    repeats: int | None = None
    warmup: Callable[[], Any] | None = None
    first_call_s: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"candidate kind must be one of {KINDS}, got {self.kind!r}")


@dataclass
class Timing:
    times_s: list[float] = field(default_factory=list)
    first_call_s: float | None = None
    output: Any = None
    missing: str | None = None  # why there is no time, e.g. "did not reach dev NLL 2.00 within 30,000 steps"

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None


def schedule(repeats: int, rounds: int) -> list[int]:
    """The rounds (0..rounds-1) in which a candidate with `repeats` calls runs, evenly spread."""
    repeats = min(repeats, rounds)
    return [r for r in range(rounds) if (r * repeats) // rounds != ((r + 1) * repeats) // rounds]


def measure(
    candidates: list[Candidate],
    rounds: int,
    log: Callable[[str], None] = print,
    rewarm_below_s: float = REWARM_BELOW_S,
) -> dict[str, Timing]:
    """Warm every candidate up, then time them interleaved over `rounds` rounds."""
    timings = {c.name: Timing(first_call_s=c.first_call_s) for c in candidates}
    rewarm = set()
    for c in candidates:
        t0 = time.perf_counter()
        (c.warmup or c.fn)()
        if c.warmup is None and c.first_call_s is None:
            timings[c.name].first_call_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if c.warmup is None:  # a second, compiled call tells whether this candidate is short
            c.fn()
            if time.perf_counter() - t0 < rewarm_below_s:
                rewarm.add(c.name)
    plan = {c.name: set(schedule(c.repeats or rounds, rounds)) for c in candidates}
    for r in range(rounds):
        shift = r % len(candidates)
        for c in candidates[shift:] + candidates[:shift]:
            if r not in plan[c.name]:
                continue
            if c.name in rewarm:
                c.fn()
            t0 = time.perf_counter()
            out = c.fn()
            elapsed = time.perf_counter() - t0
            timing = timings[c.name]
            if not timing.times_s:
                timing.output = out
            timing.times_s.append(elapsed)
    for c in candidates:
        log(f"  {c.label:<58} median {format_seconds(timings[c.name].median_s):>9}")
    return timings


@dataclass(frozen=True)
class Target:
    """subject should be at least `at_least` times as fast as the fastest of baselines.

    Speed is work per second, so candidates that did different amounts of work
    (e.g. 1,000 lecture names against 10,000 batched ones) compare fairly.
    at_least None: report the ratio, no target.
    """

    label: str
    subject: str
    baselines: tuple[str, ...]
    at_least: float | None = None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def check(name: str, passed: bool, detail: str) -> Check:
    return Check(name, bool(passed), detail)


@dataclass
class TaskResult:
    title: str
    description: str
    work_unit: str
    candidates: list[dict]
    ratios: list[dict]
    checks: list[Check]
    extra: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rounds: int = 0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict:
        record = asdict(self)
        record["checks"] = [asdict(c) for c in self.checks]
        return record

    def candidate(self, name: str) -> dict:
        return next(c for c in self.candidates if c["name"] == name)

    def ratio(self, label: str) -> dict:
        return next(r for r in self.ratios if r["label"] == label)


def seconds_per_unit(c: Candidate, t: Timing) -> float:
    return t.median_s / c.work


def candidate_row(c: Candidate, t: Timing) -> dict:
    """One candidate's line of the results: its medians per call and per unit, or None where it is missing."""
    timed = not t.missing
    return {
        "name": c.name,
        "label": c.label,
        "framework": c.framework,
        "kind": c.kind,
        "work": c.work,
        "repeats": len(t.times_s),
        "median_s": t.median_s if timed else None,
        "min_s": min(t.times_s) if timed else None,
        "max_s": max(t.times_s) if timed else None,
        "first_call_s": t.first_call_s,
        "per_unit_s": seconds_per_unit(c, t) if timed else None,
        "per_second": c.work / t.median_s if timed else None,
        "missing": t.missing,
    }


def ratio_row(target: Target, by_name: dict[str, Candidate], timings: dict[str, Timing]) -> dict:
    """subject's speed-up over the fastest baseline with a time; none if the subject or every baseline is missing."""
    row = {"label": target.label, "subject": target.subject, "target": target.at_least}
    present = [n for n in target.baselines if not timings[n].missing]
    if timings[target.subject].missing or not present:
        gone = [n for n in (target.subject, *target.baselines) if timings[n].missing]
        return {
            **row,
            "baseline": present[0] if present else target.baselines[0],
            "speedup": None,
            "met": None if target.at_least is None else False,
            "missing": "; ".join(f"{n} {timings[n].missing}" for n in gone),
        }
    baseline = min(present, key=lambda n: seconds_per_unit(by_name[n], timings[n]))
    subject = seconds_per_unit(by_name[target.subject], timings[target.subject])
    speedup = seconds_per_unit(by_name[baseline], timings[baseline]) / subject
    met = None if target.at_least is None else speedup >= target.at_least
    return {**row, "baseline": baseline, "speedup": speedup, "met": met, "missing": None}


def result(
    title: str,
    description: str,
    work_unit: str,
    candidates: list[Candidate],
    timings: dict[str, Timing],
    targets: list[Target],
    checks: list[Check],
    rounds: int,
    extra: dict | None = None,
    notes: list[str] | None = None,
) -> TaskResult:
    """Summarise timings: per candidate median/min/max, per target the speed-up and verdict."""
    rows = [candidate_row(c, timings[c.name]) for c in candidates]
    by_name = {c.name: c for c in candidates}
    ratios = [ratio_row(target, by_name, timings) for target in targets]
    return TaskResult(title, description, work_unit, rows, ratios, checks, extra or {}, notes or [], rounds)


def error_line(err: BaseException) -> str:
    """An exception as one line, for a note saying why a candidate was left out."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def format_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-5:
        return f"{s * 1e6:.0f} µs"
    return f"{s * 1e6:.2f} µs"


def format_ratio(x: float | None) -> str:
    """Speed-ups: 2 significant digits below 10 (0.043, 2.5), whole or one decimal above; – for none."""
    if x is None:
        return "–"
    return f"{x:.2g}" if x < 10 else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


# name -> task function, in registration order (the order they run and print in)
TASKS: dict[str, Callable[..., TaskResult]] = {}


def register(name: str):
    """Decorator: add a task function ``task(ctx) -> TaskResult`` under `name`."""

    def add(fn):
        if name in TASKS:
            raise ValueError(f"task {name!r} registered twice")
        TASKS[name] = fn
        return fn

    return add
