"""Task 3: sample 10,000 names from the bigram table P (add-1 smoothed counts).

The lecture draws one character at a time with torch.multinomial; a batched
PyTorch sampler advances all names at once, dropping the ended ones;
makemore_jax.sampling samples all of them in one compiled call, moving the
running names into smaller batches as the others end. The samplers use
different random streams, so their outputs are compared as distributions: the
lengths of the names.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from makemore_jax import sampling
from makemore_jax.models import bigram
from makemore_jax.models.counts import count_matrix, smoothed_probs

from ..context import Context
from ..harness import (
    Candidate,
    Target,
    TaskResult,
    check,
    format_seconds,
    measure,
    register,
    result,
)
from .common import BigramData, load_bigram_data

MAX_LEN = 50  # sample_names' default cap, used by every batched sampler
SEED = 2147483647  # the lecture's generator seed
MAX_Z = 5.0  # mean lengths may differ by at most 5 standard errors
MIN_KS_P = 1e-3  # and the length distributions must not be told apart at this level


def lecture_sampling(torch, P, itos: dict[int, str], n: int, g) -> list[str]:
    """The lecture's loop: one torch.multinomial per character, one name at a time."""
    names = []
    for _ in range(n):
        out = []
        ix = 0
        while True:
            p = P[ix]
            ix = torch.multinomial(p, num_samples=1, replacement=True, generator=g).item()
            out.append(itos[ix])
            if ix == 0:
                break
        names.append("".join(out))
    return names


def batched_multinomial(torch, P_VxV, n: int, max_len: int, g):
    """All names at once: per position one torch.multinomial over the rows of the running names."""
    ids_NxL = torch.zeros((n, max_len), dtype=torch.int64, device=P_VxV.device)
    running = torch.arange(n, device=P_VxV.device)
    prev = torch.zeros(n, dtype=torch.int64, device=P_VxV.device)
    for t in range(max_len):
        nxt = torch.multinomial(P_VxV[prev], 1, replacement=True, generator=g).squeeze(1)
        ids_NxL[running, t] = nxt
        going = nxt != 0
        running, prev = running[going], nxt[going]
        if running.numel() == 0:
            break
    return ids_NxL


def batched_inverse_cdf(torch, cdf_VxV, n: int, max_len: int, g):
    """All names at once, one uniform per running name and position, looked up in the row's CDF."""
    V = cdf_VxV.shape[1]
    ids_NxL = torch.zeros((n, max_len), dtype=torch.int64, device=cdf_VxV.device)
    running = torch.arange(n, device=cdf_VxV.device)
    prev = torch.zeros(n, dtype=torch.int64, device=cdf_VxV.device)
    for t in range(max_len):
        rows = cdf_VxV[prev]
        u = torch.rand((running.numel(), 1), generator=g, device=cdf_VxV.device) * rows[:, -1:]
        nxt = torch.searchsorted(rows, u).squeeze(1).clamp_(max=V - 1)
        ids_NxL[running, t] = nxt
        going = nxt != 0
        running, prev = running[going], nxt[going]
        if running.numel() == 0:
            break
    return ids_NxL


@partial(jax.jit, static_argnames=("n", "length"))
def uniforms_only(key: jax.Array, n: int, length: int) -> jax.Array:
    """Probe: every name's whole stream of uniforms (one per name and position), and no sampling."""
    return sampling.chunk_uniforms(key, n, length).sum()


def package_sample_ids(logits_VxV: jax.Array, key: jax.Array, n: int, max_len: int) -> jax.Array:
    """makemore_jax.sampling.sample_ids on a bigram logits table: ids (n, max_len) int32."""
    params = {"W": logits_VxV}
    ids, _ = sampling.sample_ids(bigram.DECODER, None, params, key, n, max_len, jnp.float32(1.0))
    return ids


def name_lengths(ids_NxL: np.ndarray) -> np.ndarray:
    """Characters before the first boundary id (the full row if there is none)."""
    ids_NxL = np.asarray(ids_NxL)
    is_end = ids_NxL == 0
    return np.where(is_end.any(axis=1), is_end.argmax(axis=1), ids_NxL.shape[1])


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic D and its asymptotic p-value (conservative for ties)."""
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    D = float(np.abs(cdf_a - cdf_b).max())
    ne = len(a) * len(b) / (len(a) + len(b))
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * D
    if lam < 1e-3:
        return D, 1.0
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return D, min(max(p, 0.0), 1.0)


def compare_lengths(name: str, a: np.ndarray, b: np.ndarray, ref: str) -> tuple[list, dict]:
    """Mean length within MAX_Z standard errors and a KS test on the length distributions."""
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    z = (a.mean() - b.mean()) / se
    D, p = ks_two_sample(a, b)
    rel = float(a.mean() / b.mean() - 1)
    stats = {"mean": float(a.mean()), "rel_diff_of_mean": rel, "z": float(z), "ks_D": D, "ks_p": p}
    checks = [
        check(
            f"{name} mean length ~ {ref}",
            abs(z) <= MAX_Z,
            f"{a.mean():.3f} vs {b.mean():.3f} ({rel:+.1%}, z = {z:+.2f}, n = {len(a):,}/{len(b):,})",
        ),
        check(f"{name} length distribution ~ {ref} (KS)", p >= MIN_KS_P, f"D = {D:.4f}, p = {p:.3g}"),
    ]
    return checks, stats


def candidates(ctx: Context, d: BigramData, n: int, n_lecture: int) -> list[Candidate]:
    import torch

    V = d.V
    N_VxV = count_matrix(ctx.to_jax(d.xs_N), ctx.to_jax(d.ys_N), V)
    probs_VxV = smoothed_probs(N_VxV, 1.0)
    logits_VxV = jnp.log(probs_VxV)
    P = ctx.to_torch(np.asarray(N_VxV)).float() + 1  # the lecture's P = (N + 1).float(), rows normalised
    P /= P.sum(1, keepdims=True)
    cdf_VxV = P.cumsum(1)
    itos = {i: ch for ch, i in d.stoi.items()}
    gen = torch.Generator(device=ctx.torch_device).manual_seed(SEED)
    key = jax.random.key(SEED)

    def jax_ids():
        return package_sample_ids(logits_VxV, key, n, MAX_LEN).block_until_ready()

    return [
        Candidate(
            "lecture",
            "lecture: torch.multinomial per character, name by name",
            "python+torch",
            "lecture",
            lambda: lecture_sampling(torch, P, itos, n_lecture, gen),
            work=n_lecture,
            repeats=ctx.size(10, 3),
            warmup=lambda: lecture_sampling(torch, P, itos, 10, gen),
        ),
        Candidate(
            "torch_batched_multinomial",
            "torch: batched, multinomial over running names",
            "torch",
            "best_effort",
            ctx.torch_synced(lambda: batched_multinomial(torch, P, n, MAX_LEN, gen)),
            work=n,
            repeats=ctx.size(10, 3),
        ),
        Candidate(
            "torch_batched_inverse_cdf",
            "torch: batched, rand + searchsorted in the CDF",
            "torch",
            "best_effort",
            ctx.torch_synced(lambda: batched_inverse_cdf(torch, cdf_VxV, n, MAX_LEN, gen)),
            work=n,
        ),
        Candidate(
            "jax_sample_ids",
            "makemore_jax sample_ids (jit, ids on device)",
            "jax",
            "package",
            jax_ids,
            work=n,
            repeats=ctx.size(10, 3),
        ),
        Candidate(
            "jax_sample_names",
            "makemore_jax sample_names (ids + decode to str)",
            "jax",
            "package",
            lambda: sampling.sample_names(key, logits_VxV, d.vocab, n, max_len=MAX_LEN),
            work=n,
            repeats=ctx.size(10, 3),
        ),
        Candidate(
            "jax_uniforms_only",
            "probe: all n × (max_len + 1) uniforms alone (summed)",
            "jax",
            "probe",
            lambda: uniforms_only(key, n, MAX_LEN + 1).block_until_ready(),
            work=n,
            repeats=ctx.size(10, 3),
        ),
    ]


@register("bigram_sampling")
def bigram_sampling(ctx: Context) -> TaskResult:
    d = load_bigram_data(ctx)
    n, n_lecture = ctx.size(10_000, 300), ctx.size(1_000, 50)
    ctx.log(f"bigram_sampling: {n:,} names (lecture loop: {n_lecture:,}, scaled to names/s), max_len {MAX_LEN}")
    cands = candidates(ctx, d, n, n_lecture)
    rounds = ctx.size(20, 3)
    timings = measure(cands, rounds, ctx.log)

    lengths = {
        "lecture": np.array([len(s) - 1 for s in timings["lecture"].output]),  # each ends with "."
        "torch_batched_multinomial": name_lengths(timings["torch_batched_multinomial"].output.cpu()),
        "torch_batched_inverse_cdf": name_lengths(timings["torch_batched_inverse_cdf"].output.cpu()),
        "jax_sample_ids": name_lengths(timings["jax_sample_ids"].output),
        "jax_sample_names": np.array([len(s) for s in timings["jax_sample_names"].output]),
    }
    ref = "torch_batched_multinomial"
    checks = [
        check(
            "sample_names decodes sample_ids",
            np.array_equal(lengths["jax_sample_names"], lengths["jax_sample_ids"]),
            "same key, same lengths",
        )
    ]
    stats = {ref: {"mean": float(lengths[ref].mean())}}
    for name in ("lecture", "torch_batched_inverse_cdf", "jax_sample_ids"):
        more, stats[name] = compare_lengths(name, lengths[name], lengths[ref], ref)
        checks += more
    targets = [
        Target("JAX vs lecture loop (names/s)", "jax_sample_ids", ("lecture",), at_least=100.0),
        Target(
            "JAX vs best batched PyTorch (names/s)",
            "jax_sample_ids",
            ("torch_batched_multinomial", "torch_batched_inverse_cdf"),
            at_least=1.0,
        ),
        Target("JAX sample_names (strings) vs lecture loop", "jax_sample_names", ("lecture",)),
    ]
    res = result(
        "Sampling names",
        f"{n:,} names from the add-1 smoothed bigram table, at most {MAX_LEN} characters",
        "name",
        cands,
        timings,
        targets,
        checks,
        rounds,
        extra={"max_len": MAX_LEN, "n": n, "n_lecture": n_lecture, "vocab_size": d.V, "lengths": stats},
    )
    res.notes = notes(res, n_lecture)
    return res


def notes(res: TaskResult, n_lecture: int) -> list[str]:
    c = res.candidate
    out = [
        f"The lecture loop is timed on {n_lecture:,} names and compared per name (names/s); every other "
        f"sampler makes all {res.extra['n']:,}."
    ]
    jax_t, rng_t = c("jax_sample_ids")["median_s"], c("jax_uniforms_only")["median_s"]
    mean_ids = res.extra["lengths"]["jax_sample_ids"]["mean"] + 1
    sizes = sampling.stage_sizes(res.extra["n"])
    staged = (
        f"Its loop runs in stages of fixed batch size ({' → '.join(f'{s:,}' for s in sizes)} names): when the "
        "names still running fit the next stage they move into it, so finished names stop costing steps, and it "
        f"draws the first {sampling.FIRST_HORIZON} uniforms of every name, the rest only for the names still "
        "running after that."
        if len(sizes) > 1
        else f"With {res.extra['n']:,} names its loop runs in one stage, drawing every name's uniforms."
    )
    out.append(
        f"sample_ids draws one uniform per name and position (inverse CDF; the {res.extra['vocab_size']}×"
        f"{res.extra['vocab_size']} table's rows are tempered and summed once per call) and stops when every "
        f"name has ended (names average {mean_ids:.1f} ids with their end; the longest sets the number of "
        f"steps). {staged} All {res.extra['n']:,} × {res.extra['max_len'] + 1} uniforms alone take "
        f"{format_seconds(rng_t)} (probe row) against sample_ids' {format_seconds(jax_t)}. PyTorch's batched "
        f"inverse CDF ({format_seconds(c('torch_batched_inverse_cdf')['median_s'])}) shrinks its batch to the "
        "running names at every step."
    )
    return out
