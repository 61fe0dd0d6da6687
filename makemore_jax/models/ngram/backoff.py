"""The backoff model: an n-gram model read whole from an ARPA file (KenLM, SRILM), scored by its backoff rules.

What it holds (its parameters, as a checkpoint saves them) is the file's
entries, every order in one table:

    grams          int32 (M, N)   each entry's tokens, oldest first, −1 after the last:
                                  0 = </s>, 1..V−1 the characters, V = <s>, V + 1 = <unk>
    log10_prob     float64 (M,)   its log10 probability, as the file writes it
    log10_backoff  float64 (M,)   its log10 backoff weight (0 where the file gives none)

sorted by order, then by token (the first most significant): the order in
which ``makemore export --format arpa`` writes them back.

How it scores. A word ``c1 … cn`` is ``<s> c1 … cn </s>``; each token after
``<s>`` is predicted from the at most N − 1 tokens before it, h, by

    p(w | h) = the listed probability of "h w" if the file lists it,
               else bow(h) · p(w | h'),   h' = h without its oldest token,

bow(h) = 1 where h is not listed, down to the unigrams. ``<s>`` opens a
history once: the third character of an order-5 model is predicted from
``<s> c1 c2``, never from two ``<s>``. Entries that a word can never reach
(``</s>`` or ``<unk>`` inside a history, ``<s>`` after its start, ``<s>`` or
``<unk>`` predicted) are kept for the file's sake and not used. The
distribution over the ids 0..V−1 leaves out ``<unk>`` (and ``<s>``): sampling
draws among the characters and the end, which renormalises it; scoring reads
the file's own probabilities.

The tables it runs on (``tables``, built from the entries when it is run) are
those of the sparse n-gram tables (``smoothing``): the histories of each
length as sorted int32 keys, key = (row of the history without its oldest
token, one length down) · V + oldest token (``<s>`` is id 0 there), every
history's suffixes present; each history's bow and its listed next ids with
their log-probabilities (natural log, float32) in CSR rows. ``logprobs`` runs
the rule for a batch of histories in one ``lax.scan`` over the lengths: from
the unigram row, at each longer history that is present add its bow and put
its listed entries in place.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import MakemoreError
from .. import ArraySpecs
from .counting import INT32_LIMIT
from .smoothing import search_keys

NAME = "backoff"
SAMPLE_BLOCK = 65  # its block size: names of up to 64 characters where sampling sets no bound (any with --max-len)
LN10 = math.log(10.0)
TABLE_NAMES = ("unigram", "ctx_keys", "level_rows", "bow", "row_start", "next_ids", "logp")


def is_backoff(params: dict) -> bool:
    """Whether params are a backoff model's run tables (the n-gram code runs both kinds)."""
    return "bow" in params


def entry_orders(grams: np.ndarray) -> np.ndarray:
    """Each entry's order: how many tokens it has."""
    return (np.asarray(grams) >= 0).sum(axis=1)


# ---- the run tables ----------------------------------------------------------------------

_BUILT: list[tuple[object, int, dict]] = []  # (the entries' grams array, V, its tables): the last few built
_KEEP = 4


def run_tables(params: dict, V: int) -> dict:
    """``tables`` of these entries, built once: a model is run many times (each runner, sample, score)."""
    grams = params["grams"]
    for held, size, built in _BUILT:
        if held is grams and size == V:
            return built
    built = tables(params, V)
    _BUILT.insert(0, (grams, V, built))
    del _BUILT[_KEEP:]
    return built


def tables(params: dict, V: int) -> dict:
    """The tables ``logprobs`` runs on, from a backoff model's entries (V: the vocabulary's size)."""
    grams = np.asarray(params["grams"], np.int64)
    logp = np.asarray(params["log10_prob"], np.float64) * LN10
    bow = np.asarray(params["log10_backoff"], np.float64) * LN10
    N, n_of = grams.shape[1], entry_orders(grams)
    unigram = np.full((V,), -np.inf)
    first = grams[:, 0]
    listed = (n_of == 1) & (first < V)
    unigram[first[listed]] = logp[listed]
    levels = _histories(grams, bow, n_of, N, V)
    keys, rows = _keyed(levels, V)
    level_rows = np.cumsum([0] + [len(k) for k in keys])
    # each history's bow: the entry of that history, where the file lists it
    bows = np.zeros((int(level_rows[-1]),))
    for L in range(1, N):
        at = (n_of == L) & _usable_history(grams[:, :L], V)
        found = rows(_as_history(grams[at, :L], V))
        bows[level_rows[L - 1] + found[found >= 0]] = bow[at][found >= 0]
    # each entry "h w" a word can reach, in the row of h
    which = np.flatnonzero(n_of >= 2)
    n_at = n_of[which]
    usable = np.zeros(len(which), bool)
    row = np.zeros(len(which), np.int64)
    for n in range(2, N + 1):
        of_n = n_at == n
        hist = grams[which[of_n], : n - 1]
        nxt = grams[which[of_n], n - 1]
        ok = _usable_history(hist, V) & (nxt < V)
        r = np.full(len(hist), -1)
        r[ok] = rows(_as_history(hist[ok], V)) + level_rows[n - 2]
        usable[of_n], row[of_n] = ok, r
    which, row = which[usable], row[usable]
    nxt = grams[which, n_of[which] - 1]
    by_row = np.lexsort((nxt, row))
    starts = np.searchsorted(row[by_row], np.arange(int(level_rows[-1]) + 1))
    return {
        "unigram": unigram.astype(np.float32),
        "ctx_keys": np.concatenate([np.zeros((0,), np.int64), *keys]).astype(np.int32),
        "level_rows": level_rows.astype(np.int32),
        "bow": bows.astype(np.float32),
        "row_start": starts.astype(np.int32),
        "next_ids": nxt[by_row].astype(np.int32),
        "logp": logp[which][by_row].astype(np.float32),
    }


def _usable_history(hist: np.ndarray, V: int) -> np.ndarray:
    """Histories (R, L) a word can reach: characters, after at most one <s> at the start."""
    if hist.shape[1] == 0:
        return np.ones((len(hist),), bool)
    chars = (hist >= 1) & (hist < V)
    return (chars[:, 0] | (hist[:, 0] == V)) & chars[:, 1:].all(axis=1)


def _as_history(hist: np.ndarray, V: int) -> np.ndarray:
    """Usable histories in the tables' ids: <s> (V) becomes 0."""
    return np.where(hist == V, 0, hist)


def _histories(grams: np.ndarray, bow: np.ndarray, n_of: np.ndarray, N: int, V: int) -> list[np.ndarray]:
    """The distinct histories of each length 1..N − 1 the tables need (tables' ids): the histories of
    the usable entries, the usable entries with a backoff weight, and every suffix of these."""
    need: list[list[np.ndarray]] = [[] for _ in range(N)]
    for n in range(2, N + 1):
        hist = grams[n_of == n, : n - 1]
        need[n - 1].append(_as_history(hist[_usable_history(hist, V)], V))
    for L in range(1, N):
        hist = grams[(n_of == L) & (bow != 0), :L]
        need[L].append(_as_history(hist[_usable_history(hist, V)], V))
    levels: list[np.ndarray] = [np.zeros((0, 0), np.int64)] * N
    for L in range(N - 1, 0, -1):
        parts = need[L] + ([levels[L + 1][:, 1:]] if L + 1 < N else [])
        levels[L] = np.unique(np.concatenate([*parts, np.zeros((0, L), np.int64)]), axis=0)
    return levels[1:]


def _keyed(levels: list[np.ndarray], V: int):  # type: ignore[no-untyped-def]
    """Each length's sorted keys, and rows(histories) -> each history's row within its length's keys."""
    keys: list[np.ndarray] = []

    def rows(hist: np.ndarray) -> np.ndarray:
        row = np.zeros((len(hist),), np.int64)
        for j in range(1, hist.shape[1] + 1):
            key = row * V + hist[:, hist.shape[1] - j]
            pos = np.searchsorted(keys[j - 1], key)
            hit = pos < len(keys[j - 1])
            hit[hit] = keys[j - 1][pos[hit]] == key[hit]
            row = np.where(hit & (row >= 0), pos, -1)
        return row

    for L, hist in enumerate(levels, start=1):
        if len(keys) and len(keys[-1]) * V > INT32_LIMIT:
            raise MakemoreError(f"its {len(keys[-1]):,} histories of length {L - 1} are too many for int32 keys")
        parent = rows(hist[:, 1:]) if L > 1 else np.zeros((len(hist),), np.int64)
        keys.append(np.sort(parent * V + hist[:, 0]))
    return keys, rows


# ---- running it ------------------------------------------------------------------------------


def opened(contexts_BxC: jax.Array) -> jax.Array:
    """The n-gram code's contexts (the boundary 0 repeated before the start) as histories: one <s> (0),
    −1 before it (nothing there)."""
    boundary = contexts_BxC == 0
    before_another = jnp.concatenate([boundary[:, 1:], jnp.zeros_like(boundary[:, :1])], axis=1)
    return jnp.where(boundary & before_another, -1, contexts_BxC)


def logprobs(tables: dict, contexts_BxC: jax.Array) -> jax.Array:
    """log p(next id | history) by the backoff rule, for the n-gram code's contexts of N − 1 ids: (B, V) float32."""
    t = jax.tree_util.tree_map(jnp.asarray, tables)
    B, C = contexts_BxC.shape
    V = t["unigram"].shape[0]
    logp_BxV = jnp.broadcast_to(t["unigram"], (B, V))
    keys, entries = t["ctx_keys"], t["next_ids"].shape[0]
    if C == 0 or keys.shape[0] == 0:
        return logp_BxV
    history_BxC = opened(contexts_BxC)
    batch_BxV = jnp.broadcast_to(jnp.arange(B)[:, None], (B, V))

    def one_length(state, L):
        row_B, found_B, logp_BxV = state
        token_B = jnp.take(history_BxC, C - L, axis=1)
        lo, hi = t["level_rows"][L - 1], t["level_rows"][L]
        key_B = row_B * V + token_B
        pos_B = search_keys(keys, key_B, lo, hi)
        found_B = found_B & (token_B >= 0) & (pos_B < hi) & (keys[jnp.minimum(pos_B, keys.shape[0] - 1)] == key_B)
        at_B = jnp.where(found_B, pos_B, 0)
        logp_BxV = jnp.where(found_B[:, None], logp_BxV + t["bow"][at_B][:, None], logp_BxV)
        if entries:
            pos_BxV = t["row_start"][at_B][:, None] + jnp.arange(V)[None, :]
            live_BxV = found_B[:, None] & (pos_BxV < t["row_start"][at_B + 1][:, None])
            pos_BxV = jnp.minimum(pos_BxV, entries - 1)
            ids_BxV = jnp.where(live_BxV, t["next_ids"][pos_BxV], V)  # V: dropped
            logp_BxV = logp_BxV.at[batch_BxV, ids_BxV].set(t["logp"][pos_BxV], mode="drop")
        return (jnp.where(found_B, pos_B - lo, 0), found_B, logp_BxV), None

    init = (jnp.zeros((B,), jnp.int32), jnp.ones((B,), bool), logp_BxV)
    (_, _, logp_BxV), _ = jax.lax.scan(one_length, init, jnp.arange(1, C + 1))
    return logp_BxV


# ---- checking saved entries --------------------------------------------------------------------


def expected_arrays(arrays: dict[str, np.ndarray], order: int, vocab_size: int) -> ArraySpecs:
    """{'params/...': (shape, dtype)} of an order-`order` backoff model's entries; MakemoreError where the
    entries cannot be a model's (tokens out of range or out of place, values not finite, no </s>)."""
    M = (np.shape(arrays.get("params/grams", ()))[:1] or (0,))[0]
    expected: ArraySpecs = {
        "params/grams": ((M, order), np.dtype("int32")),
        "params/log10_prob": ((M,), np.dtype("float64")),
        "params/log10_backoff": ((M,), np.dtype("float64")),
    }
    if all(np.shape(arrays.get(k, ())) == shape for k, (shape, _) in expected.items()):
        grams, prob, bow = (np.asarray(arrays[k]) for k in expected)
        check_entries(grams, prob, bow, vocab_size)
    return expected


def check_entries(grams: np.ndarray, log10_prob: np.ndarray, log10_backoff: np.ndarray, V: int) -> None:
    """MakemoreError unless the entries fit: tokens −1..V + 1 with −1 only after the last, finite values,
    probabilities at most 1, every character and </s> a unigram, no entry twice."""
    tokens = np.asarray(grams, np.int64)
    n_of = entry_orders(tokens)
    padded = np.arange(tokens.shape[1])[None, :] >= n_of[:, None]
    if not (
        np.all((tokens >= -1) & (tokens <= V + 1))
        and np.all((tokens == -1) == padded)
        and np.all(n_of >= 1)
        and np.all(np.isfinite(log10_prob))
        and np.all(np.isfinite(log10_backoff))
        and np.all(log10_prob <= 0)
    ):
        raise MakemoreError("its entries are inconsistent (tokens out of range or order, values not finite or above 1)")
    unigrams = set(tokens[n_of == 1, 0].tolist())
    if not set(range(V)) <= unigrams:
        raise MakemoreError("its unigrams do not list every character and </s>")
    if len(np.unique(tokens, axis=0)) != len(tokens):
        raise MakemoreError("an entry is listed twice")
