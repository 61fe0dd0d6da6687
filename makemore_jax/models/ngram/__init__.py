"""N-gram counting models of any order, smoothed by add-k or (modified) Kneser–Ney.

An order-N model predicts the next id from the N−1 ids before it. Before the
start of a word those ids are the boundary 0, so a context also says how far
into the word it is: with N = 4, ``. . e`` is "e is the first character".
Order 1 is the unigram model, order 2 the lecture's bigram counting model.

Counting. Every predicted position of the words (each character and each
end) gives one n-gram, a row of N ids: the context, oldest first, then the
predicted id. They are counted by a jitted scatter-add into a V^N table when
that is small (``DENSE_MAX_CELLS``), and otherwise sparsely, holding only the
n-grams that occur. While V^N keys fit int32 (``key_fits``: V = 27 up to
order 6) each row is one key, its flat index, and one sort of the keys counts
them (``count_by_keys``; on the host: numpy sorts int32 keys in about a
millisecond per 200,000, XLA:CPU's sort takes over ten times as long). Beyond
that the rows are ranked in suffix order one id at a time (``refine_ranks``:
the pairs (rank so far, the id before) ranked by a presence table and a cumsum
while they are few, by a sort otherwise), then summed per rank. Every way
gives the same ``NgramCounts``: the distinct n-grams in *suffix order* (sorted
by the predicted id, then the id before it, and so on back) with their
counts. In suffix order the n-grams that end alike are neighbours, so every
lower order is a run of rows (``all_levels``); with keys, order n − 1's key is
order n's divided by V. ``count_ngrams_streaming`` counts a word list chunk by
chunk, holding one chunk and the table at a time.

Counting within a memory budget (``spill.count_words``, what training uses):
the words are keyed a piece at a time (int32 keys while V^N fits them, int64
beyond), each piece sorted and run-length counted into a run; runs stay in
memory while they fit the budget (``--memory``) and are written to a temporary
directory past it, then merged k ways a block at a time, as KenLM's ``lmplz
-S`` does. The result is the same ``NgramCounts`` as counting every row at once.

Smoothing. Interpolated Kneser–Ney (Kneser & Ney 1995; Chen & Goodman 1999,
"An empirical study of smoothing techniques for language modeling") mixes
every order with the next lower one, down to the uniform distribution:

    p_n(w | h) = (c(h w) − D(c(h w)) + Σ_w' D(c(h w')) · p_{n−1}(w | h')) / Σ_w' c(h w')

with h' the context without its oldest id and D(0) = 0; a context with no
counts leaves p_{n−1} as it is. At the model's own order c is the raw count;
below it, the continuation count: how many distinct ids were seen before
``h w``. Plain Kneser–Ney has one discount per order, D = n1 / (n1 + 2 n2)
from that order's count-of-counts n_k (Ney, Essen & Kneser 1994) unless one is
given; modified Kneser–Ney has three, D1, D2 and D3+ for counts 1, 2 and ≥ 3,
from n1..n4 (Chen & Goodman), optionally scaled. Every row sums to 1 by
construction: the mass taken by the discounts is what the lower order gets.

Sizes. V^N is never formed as an exact integer to decide anything
(``power_fits`` multiplies up and stops at the bound), so a huge order is
refused at once: training and tuning count orders up to ``MAX_ORDER``
(``order_too_large``), and the training layer checks ``table_bytes`` (what
the counted tables of orders 1..N can take) and ``check_in_memory_count`` (an
order whose keys overflow int64 is counted in memory, within ``--memory``)
before counting starts.

The package: ``counting`` (the n-grams of a word list and their counts at
every order), ``spill`` (counting within a memory budget), ``smoothing`` (discounts, the count tables a model holds, the
next-id distributions) and ``model`` (scoring, apply and decoding, what a
checkpoint holds, the ModelDef). The names below are the ones other code uses.

Parameters. A model's parameters are its counts of every order 1..N and its
discounts (or k): a plain pytree that ``next_logprobs`` turns into the
next-id distributions of a batch of contexts in one jitted call, one
``lax.scan`` over the orders (see "count tables" below for the layout: dense
while V^N is small, otherwise one compressed row per context seen, found by
binary search on int32 keys).
"""

from __future__ import annotations

from .counting import (
    DENSE_MAX_CELLS,
    MAX_NGRAM_CELLS,
    MAX_ORDER,
    RANKING,
    Level,
    NgramCounts,
    all_levels,
    count_ngram_rows,
    count_ngrams,
    count_weighted_rows,
    counts_from_table,
    dense_fits,
    flat_index,
    key_fits,
    largest_order_within,
    ngram_keys,
    order_too_large,
    padded_rows,
    power_fits,
    ranking_method,
    read_word_chunks,
    refine_ranks,
    table_bytes,
    vocabulary_of_chunks,
    word_pieces,
    words_to_ngrams,
)
from .model import (
    EVAL_CHUNK,
    MODEL_DEF,
    MODELS,
    apply,
    count,
    decode_init,
    decode_step,
    describe,
    expected_arrays,
    nll_per_list,
    resolve,
    split_nll,
    word_nll,
    words_nll,
)
from .smoothing import (
    FALLBACK_DISCOUNTS,
    METHODS,
    add_k,
    build_params,
    count_tables,
    fit,
    fold_orders,
    kn_discount,
    kn_mix,
    layout,
    modified_kn_discounts,
    next_logprobs,
    row_stats,
    smoothing_params,
)
from .spill import (
    check_in_memory_count,
    count_chunks,
    count_ngrams_streaming,
    count_words,
    default_memory,
    memory_bytes,
    physical_memory,
    stream_keys,
)

__all__ = [
    "all_levels",
    "count_ngram_rows",
    "count_ngrams",
    "count_ngrams_streaming",
    "count_weighted_rows",
    "counts_from_table",
    "dense_fits",
    "DENSE_MAX_CELLS",
    "flat_index",
    "key_fits",
    "largest_order_within",
    "Level",
    "MAX_NGRAM_CELLS",
    "MAX_ORDER",
    "ngram_keys",
    "order_too_large",
    "power_fits",
    "table_bytes",
    "NgramCounts",
    "padded_rows",
    "RANKING",
    "ranking_method",
    "read_word_chunks",
    "refine_ranks",
    "vocabulary_of_chunks",
    "word_pieces",
    "words_to_ngrams",
    "count_chunks",
    "count_words",
    "check_in_memory_count",
    "default_memory",
    "memory_bytes",
    "physical_memory",
    "stream_keys",
    "add_k",
    "build_params",
    "count_tables",
    "FALLBACK_DISCOUNTS",
    "fit",
    "fold_orders",
    "kn_discount",
    "kn_mix",
    "layout",
    "METHODS",
    "modified_kn_discounts",
    "next_logprobs",
    "row_stats",
    "smoothing_params",
    "apply",
    "count",
    "decode_init",
    "decode_step",
    "describe",
    "EVAL_CHUNK",
    "expected_arrays",
    "MODEL_DEF",
    "MODELS",
    "nll_per_list",
    "resolve",
    "split_nll",
    "word_nll",
    "words_nll",
]
