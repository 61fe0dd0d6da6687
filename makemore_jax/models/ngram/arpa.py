"""ARPA export of the counting model and the n-gram models: the format KenLM and SRILM read.

Tokens are the characters. The boundary id 0 is written ``<s>`` where it is
context (the start of a word) and ``</s>`` where it is predicted (the end); a
word is a sentence. A reader scores ``c1 … cn`` the standard way: one
``<s>`` before it, ``</s>`` after it, each token given the longest history of
at most N − 1 tokens, and by backoff

    p(w | h) = the listed probability of "h w" if it is listed,
               else bow(h) · p(w | h'),   h' = h without its oldest token,

with bow(h) = 1 (log10 0) when h is not listed. The file is built so that
this gives exactly the model's own probabilities.

The start of a word. The model pads a context with N − 1 boundary ids: with
N = 4, the first character is predicted from ``. . .``, the second from
``. . c1``, the third from ``. c1 c2``; a boundary only ever opens a context.
A reader with one ``<s>`` asks ``<s>``, ``<s> c1`` and ``<s> c1 c2`` instead:
each model context with leading boundaries is written as one ``<s>`` and the
characters after them. The model's probability in a context ``. . c1`` is the
top order's; its lower orders (``. c1``, then ``c1``) are reached only through
it. So ``<s> c1 w`` is listed with the top order's probability p_N(w | . . c1),
and the backoff weight of ``<s> c1`` is the product of the interpolation
weights of the orders whose context still starts with a boundary (``. . c1``
and ``. c1``), down to the order where the ARPA context loses its ``<s>``
(``c1``). The model's contexts of lower orders that start with a boundary
(``. c1`` at order 3) are never written: no reader with one ``<s>`` asks them.
``<s>`` itself is a unigram with probability 0 (log10 −99, as usual) and as
backoff weight that product for the context ``. . .``.

Kneser–Ney (plain and modified). Order n's probability is
p_n(w | h) = (c − D(c)) / Σc + γ(h) · p_{n−1}(w | h'), γ(h) = Σ_w D(c(h w)) / Σc:
every n-gram the model counts at order n (raw counts at N, continuation counts
below) is listed with p_n, and every context gets γ as its backoff weight; an
n-gram that is not listed is then γ(h) · p_{n−1}, as in the model. Unigrams
are the order-1 model (mixed with the uniform distribution), every id listed.
Every listed n-gram's prefix and suffix are listed too (KenLM and SRILM find
n-grams by extending them one token at a time).

Add-k. Only the top order's counts matter: p(w | h) = (c(h w) + k) / (c(h) + kV)
in a context seen in training, 1/V in one never seen. Each seen context's
full row (every next id) is listed; unigrams are 1/V, and every backoff
weight is 1, so an unseen context falls through to 1/V. For the same
prefix/suffix closure the shorter suffixes of the seen contexts are listed
with full rows of 1/V (the value backoff would give them anyway). An order-1
add-k model is its smoothed unigram row. A probability of 0 (add-k with
k = 0) is written as log10 −99.

Everything is vectorised numpy over the count tables, in float64; the text
is formatted line by line (7 significant digits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...data.words import BOUNDARY_ID, Vocabulary
from ...errors import MakemoreError
from .. import FittedView
from . import backoff
from .counting import Level, NgramCounts, all_levels
from .smoothing import count_tables, model_order, vocab_size_of

EXPORTABLE = ("counts", "ngram", "backoff")
LOG10_ZERO = -99.0  # log10 of probability 0, as ARPA files write it
DIGITS = 7  # significant digits of each log10 value


@dataclass(frozen=True)
class Section:
    """The entries of one order: token ids (M, n), 0 = </s>, 1..V−1 the characters, V = <s>;
    log10 probabilities (M,); log10 backoff weights (M,), None at the top order."""

    ids: np.ndarray
    logprob: np.ndarray
    backoff: np.ndarray | None


def arpa_text(model: FittedView) -> tuple[str, tuple[int, ...]]:
    """The ARPA file of a counting or n-gram model, and how many n-grams it lists of each order.

    model: a fitted model (``.type``, ``.config``, ``.vocab``, ``.params``).
    MakemoreError for any other model type, or a character that cannot be a
    token (white space).
    """
    kind = getattr(model, "type", None)
    if kind not in EXPORTABLE:
        raise MakemoreError(
            f"a {kind} model cannot be written as ARPA: only the counting model (--type counts), "
            "the n-gram models (--type ngram) and models read from ARPA files are n-gram tables"
        )
    tokens = arpa_tokens(model.vocab)
    V = model.vocab.size
    if kind == "backoff":  # read from an ARPA file: its entries as they were read
        sections = backoff_sections(model.params)
    elif kind == "counts":
        table = np.asarray(model.params["counts"])
        cells = np.argwhere(table > 0)
        sections = add_k_sections(cells, table[cells[:, 0], cells[:, 1]], 2, V, float(model.config.smoothing))
    else:
        sections = ngram_sections(model.params)
    return format_arpa(sections, tokens), tuple(len(s.ids) for s in sections)


def arpa_tokens(vocab: Vocabulary) -> list[str]:
    """Token of each id: '</s>' for 0, the characters, then '<s>' (id V) and '<unk>' (id V + 1)."""
    for c in vocab.chars:
        if c.isspace() or c == "\0":
            raise MakemoreError(f"the character {c!r} cannot be an ARPA token (ARPA separates tokens by white space)")
    return ["</s>", *vocab.chars, "<s>", "<unk>"]


def backoff_sections(params: dict) -> list[Section]:
    """A backoff model's entries by order, as it holds them (sorted as _Sections sorts)."""
    grams = np.asarray(params["grams"], np.int64)
    n_of = backoff.entry_orders(grams)
    N = grams.shape[1]
    return [
        Section(
            grams[n_of == n, :n],
            np.asarray(params["log10_prob"])[n_of == n],
            None if n == N else np.asarray(params["log10_backoff"])[n_of == n],
        )
        for n in range(1, N + 1)
    ]


def ngram_sections(params: dict) -> list[Section]:
    """The sections of an n-gram model's parameters (add-k or Kneser–Ney)."""
    counts = table_ngrams(params)
    N, V = counts.order, counts.vocab_size
    if "add_k" in params:
        return add_k_sections(counts.ngrams, counts.counts, N, V, float(params["add_k"]))
    orders = kn_orders(all_levels(counts), np.asarray(params["discounts"], np.float64), V)
    return kn_sections(orders, N, V)


# ---- the count tables back as n-grams ----------------------------------------------


def table_ngrams(params: dict) -> NgramCounts:
    """The top-order n-grams of an n-gram model's tables and their raw counts, in suffix order.

    The lower orders follow from them (``all_levels``); the tables they give
    are checked to be the model's own. MakemoreError if they are not.
    """
    N, V = model_order(params), vocab_size_of(params)
    try:
        if N == 1:
            ngrams = np.flatnonzero(np.asarray(params["unigram"]))[:, None]
            counts = np.asarray(params["unigram"])[ngrams[:, 0]]
        else:
            ngrams, counts = (_dense_top if "dense_offsets" in params else _sparse_top)(params, N, V)
    except (IndexError, ValueError):
        raise MakemoreError("its count tables do not fit together: it cannot be exported") from None
    if len(counts) == 0:
        raise MakemoreError("the model has no counts: there is nothing to export")
    by_suffix = np.lexsort(ngrams.T)  # the last column first, then the one before it, ...
    result = NgramCounts(N, V, ngrams[by_suffix].astype(np.int32), counts[by_suffix].astype(np.int32))
    kind = "dense" if "dense_offsets" in params else "sparse"
    rebuilt = count_tables(all_levels(result), N, V, kind)
    if any(not np.array_equal(rebuilt[name], np.asarray(params[name])) for name in rebuilt):
        raise MakemoreError("its count tables do not fit together: it cannot be exported")
    return result


def _dense_top(params: dict, N: int, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Order N's cells: context flat index · V + next id, the newest context id most significant."""
    offsets = np.asarray(params["dense_offsets"], np.int64)
    table = np.asarray(params["dense"])[offsets[N - 2] : offsets[N - 1]]
    cells = np.flatnonzero(table)
    digits = np.stack(np.unravel_index(cells, (V,) * N), axis=1)  # [newest context id, ..., oldest, next id]
    return np.concatenate([digits[:, N - 2 :: -1], digits[:, N - 1 :]], axis=1), table[cells]


def _sparse_top(params: dict, N: int, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Order N's rows: each context decoded from its key (row of its suffix one order down · V + oldest id)."""
    keys, levels = np.asarray(params["ctx_keys"], np.int64), np.asarray(params["level_rows"], np.int64)
    start = np.asarray(params["row_start"], np.int64)
    contexts = np.zeros((1, 0), np.int64)
    for n in range(2, N + 1):
        k = keys[levels[n - 2] : levels[n - 1]]
        contexts = np.concatenate([(k % V)[:, None], contexts[k // V]], axis=1)
    lo, hi = levels[N - 2], levels[N - 1]
    context_of = np.repeat(np.arange(hi - lo), np.diff(start[lo : hi + 1]))
    span = slice(start[lo], start[hi])
    ngrams = np.concatenate([contexts[context_of], np.asarray(params["next_ids"], np.int64)[span, None]], axis=1)
    counts = np.asarray(params["counts"])[span]
    return ngrams[counts > 0], counts[counts > 0]


# ---- Kneser–Ney --------------------------------------------------------------------


@dataclass(frozen=True)
class KnOrder:
    """One order n of an interpolated Kneser–Ney model, as the model computes it.

    ngrams (M, n): the n-grams counted at order n; prob (M,): p_n(last id | the
    ids before it); contexts (R, n − 1): the distinct contexts; gamma (R,): the
    weight of order n − 1 in each.
    """

    ngrams: np.ndarray
    prob: np.ndarray
    contexts: np.ndarray
    gamma: np.ndarray


def kn_orders(levels: Sequence[Level], discounts: np.ndarray, V: int) -> list[KnOrder]:
    """p_n of every counted n-gram and γ of every context, orders 1..N (see kn_mix in smoothing)."""
    orders: list[KnOrder] = []
    for n, level in enumerate(levels, start=1):
        c = (level.raw if n == len(levels) else level.continuation).astype(np.float64)
        ngrams = level.ngrams.astype(np.int64)
        contexts, which = distinct_contexts(ngrams)
        d1, d2, d3 = discounts[n - 1]
        d = np.select([c == 1, c == 2, c >= 3], [d1, d2, d3], 0.0)
        total = np.bincount(which, c, len(contexts))
        gamma = np.bincount(which, d, len(contexts)) / total  # Σ_w D(c(h w)) = D1 N1 + D2 N2 + D3 N3+
        lower = np.full(len(ngrams), 1.0 / V) if n == 1 else orders[-1].prob[level.suffix]
        prob = (c - d) / total[which] + gamma[which] * lower
        orders.append(KnOrder(ngrams, prob, contexts, gamma))
    return orders


def kn_sections(orders: list[KnOrder], N: int, V: int) -> list[Section]:
    """Unigrams (every id, and <s>), the n-grams inside words, and the start of words (see the module docstring)."""
    out = _Sections(N)
    unigram = np.full((V,), orders[0].gamma[0] / V)
    unigram[orders[0].ngrams[:, 0]] = orders[0].prob
    ids = np.arange(V)[:, None]
    out.add(ids, unigram, _weights(orders, 2, ids))
    starts, start_weight = start_weights(orders, N)
    out.add(np.array([[V]]), np.zeros((1,)), _lookup(starts, start_weight, np.zeros((1, N - 1), np.int64)))
    for n in range(2, N + 1):
        inside = orders[n - 1].ngrams[:, 0] != BOUNDARY_ID
        ids = orders[n - 1].ngrams[inside]
        out.add(ids, orders[n - 1].prob[inside], _weights(orders, n + 1, ids))
    if N >= 2:
        top = orders[N - 1]
        at_start = top.ngrams[:, 0] == BOUNDARY_ID
        rows, prob = top.ngrams[at_start], top.prob[at_start]
        lead = (rows[:, : N - 1] == BOUNDARY_ID).sum(axis=1)  # the boundaries that open the context
        for j in np.unique(lead):
            of_j = lead == j
            ids = np.concatenate([np.full((of_j.sum(), 1), V), rows[of_j, j:]], axis=1)
            # as a context, "<s> c w" is the top order's context ". c w" (one boundary fewer)
            out.add(ids, prob[of_j], _lookup(starts, start_weight, rows[of_j, 1:]))
    return out.sections()


def start_weights(orders: list[KnOrder], N: int) -> tuple[np.ndarray, np.ndarray]:
    """The top order's contexts that start with a boundary, and the backoff weight of each as an ARPA context.

    For ``. . c`` that is γ_N(. . c) · γ_{N−1}(. c): the product over the
    orders whose context (the last n − 1 ids) still starts with a boundary.
    """
    if N < 2:
        return np.zeros((0, 0), np.int64), np.zeros((0,))
    top = orders[N - 1]
    starting = top.contexts[:, 0] == BOUNDARY_ID
    contexts, weight = top.contexts[starting], top.gamma[starting].copy()
    for n in range(N - 1, 1, -1):
        suffix = contexts[:, N - n :]  # the last n − 1 ids: order n's context
        opened = suffix[:, 0] == BOUNDARY_ID
        weight[opened] *= _lookup(orders[n - 1].contexts, orders[n - 1].gamma, suffix[opened])
    return contexts, weight


def _weights(orders: list[KnOrder], n: int, ids: np.ndarray) -> np.ndarray:
    """The backoff weight of n-grams inside words as contexts of order n: γ_n, 1 where not a context.

    A row with a boundary (a unigram </s>, an n-gram ending the word) is no
    context inside a word (order n's ``.`` contexts are the start, <s>).
    """
    if n > len(orders):
        return np.ones((len(ids),))
    weight = np.ones((len(ids),))
    inside = (ids != BOUNDARY_ID).all(axis=1)
    weight[inside] = _lookup(orders[n - 1].contexts, orders[n - 1].gamma, ids[inside])
    return weight


def distinct_contexts(ngrams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct contexts (all ids but the last) of n-grams, and each n-gram's: (R, n − 1), (M,)."""
    if ngrams.shape[1] == 1:
        return np.zeros((1, 0), np.int64), np.zeros((len(ngrams),), np.int64)
    contexts, which = np.unique(ngrams[:, :-1], axis=0, return_inverse=True)
    return contexts, which.reshape(-1)


def _lookup(table: np.ndarray, values: np.ndarray, query: np.ndarray, missing: float = 1.0) -> np.ndarray:
    """values[i] for each query row equal to table[i] (distinct rows), `missing` where none is."""
    out = np.full((len(query),), missing)
    if len(table) == 0 or len(query) == 0:
        return out
    if table.shape[1] == 0:
        return np.full((len(query),), values[0])
    _, which = np.unique(np.concatenate([table, query]), axis=0, return_inverse=True)
    which = which.reshape(-1)
    row = np.full((which.max() + 1,), -1)
    row[which[: len(table)]] = np.arange(len(table))
    found = row[which[len(table) :]]
    out[found >= 0] = values[found[found >= 0]]
    return out


# ---- add-k -------------------------------------------------------------------------


def add_k_sections(ngrams: np.ndarray, counts: np.ndarray, N: int, V: int, k: float) -> list[Section]:
    """The top order's full rows in each seen context, unigrams and shorter rows 1/V (see the module docstring)."""
    ngrams = np.asarray(ngrams, np.int64)
    contexts, which = distinct_contexts(ngrams)
    rows = np.zeros((len(contexts), V))
    rows[which, ngrams[:, -1]] = counts
    total = rows.sum(axis=1, keepdims=True)
    prob = (rows + k) / (total + k * V)  # every listed context was seen: total > 0
    out = _Sections(N)
    if N == 1:
        out.add(np.arange(V)[:, None], prob[0])
        out.add(np.array([[V]]), np.zeros((1,)))
        return out.sections()
    uniform = np.full((1, V), 1.0 / V)
    out.add(np.arange(V)[:, None], uniform[0])
    out.add(np.array([[V]]), np.zeros((1,)))
    lead = (contexts == BOUNDARY_ID).sum(axis=1)
    for j in np.unique(lead):
        of_j = lead == j
        ids = contexts[of_j] if j == 0 else np.concatenate([np.full((of_j.sum(), 1), V), contexts[of_j, j:]], axis=1)
        out.add(*_full_rows(ids, prob[of_j]))
    for length in range(1, N - 1):  # the suffixes of the contexts inside words, for the prefix/suffix closure
        suffixes = contexts[:, N - 1 - length :]
        shorter = np.unique(suffixes[suffixes[:, 0] != BOUNDARY_ID], axis=0)
        out.add(*_full_rows(shorter, np.broadcast_to(uniform, (len(shorter), V))))
    return out.sections()


def _full_rows(contexts: np.ndarray, prob_RxV: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (context, next id) of R contexts: ids (R·V, L + 1) and their probabilities (R·V,)."""
    R, V = prob_RxV.shape
    ids = np.concatenate([np.repeat(contexts, V, axis=0), np.tile(np.arange(V), R)[:, None]], axis=1)
    return ids, np.asarray(prob_RxV).reshape(-1)


# ---- the file ----------------------------------------------------------------------


class _Sections:
    """Entries gathered by order: each added part's probabilities and backoff weights (1 unless given)."""

    def __init__(self, order: int):
        self.order = order
        self.parts: dict[int, list] = {n: [] for n in range(1, order + 1)}

    def add(self, ids: np.ndarray, prob: np.ndarray, weight: np.ndarray | None = None) -> None:
        weight = np.ones((len(ids),)) if weight is None else weight
        self.parts[ids.shape[1]].append((np.asarray(ids, np.int64), np.asarray(prob, np.float64), weight))

    def sections(self) -> list[Section]:
        out = []
        for n, parts in self.parts.items():
            ids = np.concatenate([p[0] for p in parts] or [np.zeros((0, n), np.int64)])
            prob = np.concatenate([p[1] for p in parts] or [np.zeros((0,))])
            weight = np.concatenate([p[2] for p in parts] or [np.zeros((0,))])
            tidy = np.lexsort(ids.T[::-1])  # by the first token, then the next, ...
            out.append(Section(ids[tidy], log10(prob[tidy]), None if n == self.order else log10(weight[tidy])))
        return out


def log10(x: np.ndarray) -> np.ndarray:
    """log10, with probability 0 as LOG10_ZERO."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log10(x), LOG10_ZERO)


def format_arpa(sections: list[Section], tokens: list[str]) -> str:
    """The text: the \\data\\ counts, then each order's lines "log10 p <TAB> tokens [<TAB> log10 bow]", then \\end\\."""
    lines = ["\\data\\"] + [f"ngram {n}={len(s.ids)}" for n, s in enumerate(sections, start=1)] + [""]
    token = np.asarray(tokens, dtype=object)
    for n, s in enumerate(sections, start=1):
        words = token[s.ids[:, 0]]
        for j in range(1, n):
            words = words + " " + token[s.ids[:, j]]
        text = _numbers(s.logprob) + "\t" + words
        if s.backoff is not None:
            text = text + "\t" + _numbers(s.backoff)
        lines += [f"\\{n}-grams:", *text.tolist(), ""]
    return "\n".join(lines + ["\\end\\", ""])


def _numbers(x: np.ndarray) -> np.ndarray:
    return np.array(
        ["-99" if v == LOG10_ZERO else "0" if v == 0 else f"{v:.{DIGITS}g}" for v in x.tolist()], dtype=object
    )
