"""Task: how the cost of the main commands grows with the word list, from names.txt to 4M words.

Each run is the whole command a user types, in a fresh process: reading the
list, splitting, counting or training, scoring, saving, printing samples.
Three commands, each on names.txt (32,033 words) and on lists of 1M and 4M
words drawn from names.txt's bigram model (``benchmarks.make_words``, seed 0,
written into a temporary folder; the same bytes on any machine):

- ``makemore train --type counts``: the bigram count matrix;
- ``makemore train --type ngram --order 6``: modified Kneser–Ney of order 6;
- ``makemore train --type transformer --steps 300 --eval-every 300``.

Time is wall time and memory the process's peak resident set (``wait4``'s
ru_maxrss, read by a small launcher process: see LAUNCHER). The targets are
the issue's: the Transformer command on 1M words costs at most 1.5× the
same command on names.txt, on 4M words at most 2× (as speed-ups: at least
1/1.5 and 1/2); the n-gram model of order 6 counts 4M
words within 60 s and 2 GB. The growth factor per 4× more words is the time
(or memory) ratio from 1M to 4M, and from names.txt to 1M scaled to a 4×
step (ratio^(ln 4 / ln 31.2)). A full run also runs each command once on a
20M-word list (about 123 MB), to show it completes (the n-gram counting within its
default memory budget) and at what cost.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from makemore_jax.data.words import bundled_names_path

from ..context import Context
from ..harness import Candidate, Target, TaskResult, Timing, check, format_seconds, register, result
from ..make_words import sample_words

COMMANDS = {
    "counts": ["--type", "counts"],
    "ngram6": ["--type", "ngram", "--order", "6"],
    "transformer": ["--type", "transformer", "--steps", "300", "--eval-every", "300"],
}
# --quick: a counted and a trained model, the cheapest of each (the Transformer's and the n-gram's scaling are
# measured by the full run; the n-gram's counting by ngram_build)
QUICK_COMMANDS = {
    "counts": ["--type", "counts"],
    "bigram": ["--type", "bigram", "--steps", "3", "--eval-every", "3"],
}
SIZES = {"32k": None, "1m": 1_000_000, "4m": 4_000_000}  # None: names.txt itself
QUICK_SIZES = {"2k": 2_000, "8k": 8_000}  # --quick: small lists drawn the same way, seconds per command
BIG = 20_000_000
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Linux keeps a process's peak memory across exec, and a child forked (or vforked) from this
# process starts from this process's own; so the command runs under a small launcher, a fresh
# Python that starts it and reads its peak back with wait4.
LAUNCHER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n"
)


def run_command(args: list[str], workdir: str) -> dict:
    """One `makemore train` in its own process: wall time, peak memory (bytes), exit status, output."""
    log, peak = os.path.join(workdir, "output.txt"), os.path.join(workdir, "peak.json")
    command = [sys.executable, "-m", "makemore_jax", "train", *args, "-o", os.path.join(workdir, "run")]
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", LAUNCHER, peak, *command], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        wall = time.perf_counter() - t0
    with open(peak, encoding="utf-8") as f:
        status, maxrss_kb = json.load(f)
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return {"wall_s": wall, "peak_bytes": maxrss_kb * 1024, "exit": status, "output": text}


def nll_line(output: str) -> str:
    """The 'train NLL ... dev NLL ... test NLL ...' line the command prints, or ''."""
    return next((line for line in output.splitlines() if "test NLL" in line), "")


def growth_per_4x(small: float, large: float, words_small: int, words_large: int) -> float:
    """large / small, scaled to a step of 4× more words (power-law growth between the two sizes)."""
    return (large / small) ** (math.log(4) / math.log(words_large / words_small))


def growth_and_notes(records: dict, words: dict, sizes: list, commands: list) -> tuple[dict, list[str]]:
    """The growth per 4× more words of each command's median time and its peak memory, and the notes saying so."""
    growth = {}
    for model in commands:
        t = {tag: statistics.median(records[f"{model}_{tag}"]["wall_s"]) for tag in sizes}
        m = {tag: records[f"{model}_{tag}"]["peak_bytes"] for tag in sizes}
        growth[model] = {
            f"{a}->{b}": {
                "time": growth_per_4x(t[a], t[b], words[a], words[b]),
                "memory": growth_per_4x(m[a], m[b], words[a], words[b]),
            }
            for a, b in zip(sizes[:-1], sizes[1:])
        }
    notes = [
        f"{model}: per 4× more words, median time ×"
        + ", ×".join(f"{g['time']:.2f} ({step.replace('->', ' → ')})" for step, g in growth[model].items())
        + "; peak memory ×"
        + ", ×".join(f"{g['memory']:.2f}" for g in growth[model].values())
        + "; peak "
        + ", ".join(f"{records[f'{model}_{tag}']['peak_bytes'] / 2**30:.2f} GiB" for tag in sizes)
        + "."
        for model in commands
    ]
    return growth, notes


def ngram_note(record: dict, n_words: int) -> str:
    """The n-gram target's line: median time and peak memory against ≤ 60 s and ≤ 2 GB."""
    t, m = statistics.median(record["wall_s"]), record["peak_bytes"]
    return (
        f"ngram order 6 on {n_words:,} words: {t:.1f} s (median) and {m / 2**30:.2f} GiB peak "
        f"(target ≤ 60 s and ≤ 2 GB: {'met' if t <= 60 and m <= 2e9 else 'MISSED'})."
    )


def scaling(ctx: Context) -> TaskResult:
    commands = QUICK_COMMANDS if ctx.quick else COMMANDS
    sizes = QUICK_SIZES if ctx.quick else SIZES
    rounds = 1 if ctx.quick else 3
    with tempfile.TemporaryDirectory(prefix="makemore-scaling-") as scratch:
        files, words = {}, {}
        for tag, n in sizes.items():
            if n is None:
                files[tag], words[tag] = bundled_names_path(), 32_033
                continue
            files[tag] = os.path.join(scratch, f"words-{tag}.txt")
            with open(files[tag], "wb") as f:
                f.write(sample_words(n, seed=0))
            words[tag] = n
        runs: dict[str, list[dict]] = {}
        for r in range(rounds):  # every command at every size once per round, so a slow spell hits all alike
            for model, flags in commands.items():
                for tag in sizes:
                    name = f"{model}_{tag}"
                    work = os.path.join(scratch, f"{name}-{r}")
                    os.makedirs(work)
                    runs.setdefault(name, []).append(run_command([*flags, "-i", files[tag]], work))
                    last = runs[name][-1]
                    ctx.log(
                        f"  {name:<18} {format_seconds(last['wall_s']):>9}  {last['peak_bytes'] / 2**30:5.2f} GiB"
                        f"  exit {last['exit']}"
                    )
        big, big_bytes = {}, 0
        if not ctx.quick:  # once each: the largest list, to show every command completes on it
            files["20m"] = os.path.join(scratch, "words-20m.txt")
            with open(files["20m"], "wb") as f:
                f.write(sample_words(BIG, seed=0))
            big_bytes = os.path.getsize(files["20m"])
            for model, flags in commands.items():
                work = os.path.join(scratch, f"{model}_20m")
                os.makedirs(work)
                big[model] = run_command([*flags, "-i", files["20m"]], work)
                ctx.log(
                    f"  {model + '_20m':<18} {format_seconds(big[model]['wall_s']):>9}  "
                    f"{big[model]['peak_bytes'] / 2**30:5.2f} GiB  exit {big[model]['exit']}"
                )
    cands, timings, checks, records = [], {}, [], {}
    for name, rs in runs.items():
        model, tag = name.rsplit("_", 1)
        ok = [r for r in rs if r["exit"] == 0]
        cand = Candidate(name, f"{model} on {words[tag]:,} words", "jax", "package", fn=lambda: None)
        cands.append(cand)
        timings[name] = Timing(
            times_s=[r["wall_s"] for r in ok], output=None, missing=None if ok else f"exit {rs[0]['exit']}"
        )
        records[name] = {
            "wall_s": [r["wall_s"] for r in rs],
            "peak_bytes": max(r["peak_bytes"] for r in rs),
            "exit": [r["exit"] for r in rs],
            "nll": nll_line(rs[0]["output"]),
        }
        checks.append(
            check(
                f"{name}: exits 0 and reports train, dev and test NLL",
                len(ok) == len(rs) and bool(nll_line(rs[0]["output"])),
                records[name]["nll"] or (rs[0]["output"].strip().splitlines() or ["no output"])[-1],
            )
        )
    small, mid, large = list(sizes)[0], list(sizes)[1], list(sizes)[-1]
    base = "names.txt" if sizes[small] is None else f"{words[small]:,} words"
    trained = "bigram" if ctx.quick else "transformer"  # the trained model whose cost must grow gently
    targets = [
        Target(
            f"{trained}: {words[mid]:,} words vs {base} (≥ 0.667: ≤ 1.5× the time)",
            f"{trained}_{mid}",
            (f"{trained}_{small}",),
            0.667,
        )
    ]
    if not ctx.quick:
        targets.append(
            Target(
                f"transformer: {words[large]:,} words vs {base} (≥ 0.5: ≤ 2× the time)",
                f"transformer_{large}",
                (f"transformer_{small}",),
                0.5,
            )
        )
    for model in commands:
        if model != trained:
            targets.append(
                Target(f"{model}: {words[large]:,} words vs {base}", f"{model}_{large}", (f"{model}_{small}",))
            )
    growth, notes = growth_and_notes(records, words, list(sizes), list(commands))
    extra = {"records": records, "growth_per_4x": growth, "words": words}
    if not ctx.quick:
        notes.append(ngram_note(records[f"ngram6_{large}"], words[large]))
        extra["20m"] = {
            m: {k: r[k] for k in ("wall_s", "peak_bytes", "exit")} | {"nll": nll_line(r["output"])}
            for m, r in big.items()
        }
        for model, r in big.items():
            budget = " (counting within the default memory budget)" if model == "ngram6" else ""
            checks.append(
                check(
                    f"{model} on {BIG:,} words completes{budget}",
                    r["exit"] == 0 and bool(nll_line(r["output"])),
                    f"{r['wall_s']:.1f} s, {r['peak_bytes'] / 2**30:.2f} GiB peak, exit {r['exit']}",
                )
            )
        notes.append(
            f"On {BIG:,} words ({big_bytes / 1e6:.0f} MB), once each: "
            + "; ".join(f"{m} {r['wall_s']:.0f} s, {r['peak_bytes'] / 2**30:.2f} GiB peak" for m, r in big.items())
            + "."
        )
    description = (
        "wall time and peak memory of whole `makemore train` commands (counts; ngram order 6; Transformer, "
        f"300 steps) on {base} and on {', '.join(f'{words[t]:,}' for t in list(sizes)[1:])} words drawn from "
        "names.txt's bigram model, each in a fresh process"
    )
    return result(
        "Cost against the size of the word list",
        description,
        "run",
        cands,
        timings,
        targets,
        checks,
        rounds,
        extra=extra,
        notes=notes,
    )


register("scaling")(scaling)
