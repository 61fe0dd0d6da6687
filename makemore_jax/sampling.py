"""Seeded, batched generation: names drawn in compiled chunks and handed out as they come, for every model.

Every name has its own key, ``fold_in(key, i)``, and its own stream of
uniforms drawn from it, so the first k names of ``n`` are the same for any
n >= k and nothing depends on batch shape, chunk or device. The names of a
seed form one stream, positions 0, 1, 2, ... (at most 2**32 of them: i is a
uint32); a large n is drawn in chunks of a bounded size (``chunk_size``), the
position of a chunk's first name a traced argument of ``sample_ids``, so the
chunks share one compiled program and memory does not grow with n. Names that
must be unique, new or of a shortest length are the qualifying names of that
same stream, in order (``sample_stream``).

The next id is drawn by inversion: one uniform u per name and position, and the
first id whose cumulative probability under softmax(logits / T) exceeds u. That
is one random number per character where Gumbel-max (``jax.random.categorical``)
needs V of them, and random bits are most of a small model's sampling cost.
T = 0 is greedy decoding; a tiny T cannot overflow (logits are shifted by their
maximum before dividing). The loop stops as soon as every name has ended, and
names that have ended stop costing work: the loop runs in stages of shrinking
batch size, and the names still running move into the next stage when they
fit. Uniforms are drawn for the names that need them: the first few of every
name, the rest only for the names still running after the first stage.

A model is driven through its runner's ``Decoder`` (``models.runner``):
``init(params, config, n) -> state`` and ``step(params, state, token_N, t) ->
(logits_NxV, state)``; a table model's decoder also gives its table, whose
rows are inverted once. ``fast=False`` takes ``recompute_decoder`` instead,
which re-runs ``apply`` over the whole buffer at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from .data.words import BOUNDARY_ID, MAX_WORD_LEN, Vocabulary
from .errors import MakemoreError, counted
from .models import ModelConfig, Params, State, bigram
from .models.mixture import MixtureConfig
from .models.runner import Decoder
from .training.fitted import AnyFitted

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

DecoderConfig = ModelConfig | MixtureConfig | None  # what a decoder's init is given (a static argument of jit)
# one step of every name: (decoder state, current ids, t, uniforms) -> (next ids, decoder state)
NextIds = Callable[[State, jax.Array, jax.Array, jax.Array], tuple[jax.Array, State]]
Slots = tuple[jax.Array, State, jax.Array, jax.Array]  # (t, decoder state, current id, ended) of a stage's slots

TRIANGLE_MAX_V = 512  # running sums by a V×V triangle product up to this vocabulary size (1 MiB), cumsum beyond


def tempered_cdf(logits_NxV: jax.Array, temperature: jax.Array) -> jax.Array:
    """Running sums of exp((logits - max) / T) along each row (unnormalised); T > 0."""
    shifted_NxV = logits_NxV - jnp.max(logits_NxV, axis=-1, keepdims=True)  # <= 0, max exactly 0: no overflow
    p_NxV = jnp.exp(shifted_NxV / temperature)
    V = logits_NxV.shape[-1]
    if V > TRIANGLE_MAX_V:
        return jnp.cumsum(p_NxV, axis=-1)
    # A product with a triangle of ones: XLA's cumsum is a slow reduce-window on CPU.
    return jnp.dot(p_NxV, jnp.triu(jnp.ones((V, V), p_NxV.dtype)), precision=jax.lax.Precision.HIGHEST)


def threshold(total_N: jax.Array, u_N: jax.Array) -> jax.Array:
    """u·total, strictly below the total even when the product rounds up to it."""
    return jnp.minimum(u_N * total_N, jnp.nextafter(total_N, jnp.zeros_like(total_N)))


def invert(cdf_NxV: jax.Array, u_N: jax.Array) -> jax.Array:
    """The first id whose running sum exceeds u·total: an id of probability 0 is never picked."""
    return jnp.sum(cdf_NxV <= threshold(cdf_NxV[:, -1], u_N)[:, None], axis=-1).astype(jnp.int32)


def invert_rows(cdf_VxV: jax.Array, row_N: jax.Array, u_N: jax.Array) -> jax.Array:
    """invert(cdf_VxV[row_N], u_N), counting over the transposed table: on a CPU the count then runs
    along the names, contiguous, and takes about two thirds of the time."""
    below_VxN = cdf_VxV.T[:, row_N] <= threshold(cdf_VxV[row_N, -1], u_N)[None, :]
    return jnp.sum(below_VxN, axis=0, dtype=jnp.int32)


def pick(logits_NxV: jax.Array, u_N: jax.Array, temperature: jax.Array) -> jax.Array:
    """Draw from softmax(logits / T) for each row by inversion, given u in [0, 1); T = 0 is argmax."""
    return jax.lax.cond(
        temperature > 0,
        lambda logits: invert(tempered_cdf(logits, temperature), u_N),
        lambda logits: jnp.argmax(logits, axis=-1).astype(jnp.int32),
        logits_NxV,
    )


def chunk_uniforms(key: jax.Array, n: int, length: int, first: jax.Array | int = 0) -> jax.Array:
    """The uniforms that decide each name, (length, n): name i uses uniform(fold_in(key, first + i), (length,)).

    With JAX's partitionable Threefry (the default) a longer draw extends a
    shorter one, so max_len does not change the names that fit in both.
    """
    return selected_uniforms(key, jnp.arange(n), length, first)


def selected_uniforms(key: jax.Array, names_B: jax.Array, length: int, first: jax.Array | int = 0) -> jax.Array:
    """The uniforms of the names names_B only (positions first + names_B of the stream): (length, B).

    Positions are uint32, fold_in's argument: for i < 2**31 the same keys as int32 positions.
    """
    positions_B = jnp.asarray(first, jnp.uint32) + names_B.astype(jnp.uint32)
    keys_B = jax.vmap(jax.random.fold_in, (None, 0))(key, positions_B)
    return jax.vmap(lambda k: jax.random.uniform(k, (length,)), out_axes=1)(keys_B)


def draws_extend(key: jax.Array) -> bool:
    """Whether a shorter draw of uniforms from this key is the start of a longer one (partitionable Threefry)."""
    # jax's Config sets its flags as attributes at run time; its annotations do not list them
    partitionable = jax.config.jax_threefry_partitionable  # type: ignore[attr-defined]
    return partitionable and str(jax.random.key_impl(key)) == "threefry2x32"


def keep_top_k(logits_NxV: jax.Array, k: int) -> jax.Array:
    """Logits outside each row's k largest set to -inf (k >= V keeps all)."""
    if k <= 0 or k >= logits_NxV.shape[-1]:
        return logits_NxV
    kth_Nx1 = jax.lax.top_k(logits_NxV, k)[0][:, -1:]
    return jnp.where(logits_NxV < kth_Nx1, -jnp.inf, logits_NxV)


def keep_top_p(logits_NxV: jax.Array, p: float, temperature: jax.Array) -> jax.Array:
    """Nucleus filtering: each row keeps its most likely ids, in order, until their probability under
    softmax(logits / T) reaches p (the most likely always stays); the rest set to -inf. p >= 1 keeps all."""
    if p >= 1:
        return logits_NxV
    scaled_NxV = logits_NxV / jnp.where(temperature > 0, temperature, 1.0)
    order_NxV = jnp.argsort(-scaled_NxV, axis=-1)
    probs_NxV = jax.nn.softmax(jnp.take_along_axis(scaled_NxV, order_NxV, axis=-1), axis=-1)
    before_NxV = jnp.cumsum(probs_NxV, axis=-1) - probs_NxV  # mass of the more likely ids
    keep_sorted_NxV = before_NxV < p
    keep_NxV = (
        jnp.zeros_like(keep_sorted_NxV).at[jnp.arange(logits_NxV.shape[0])[:, None], order_NxV].set(keep_sorted_NxV)
    )
    return jnp.where(keep_NxV, logits_NxV, -jnp.inf)


class Steer(NamedTuple):
    """What a draw is steered by (hashable: a static argument of sample_ids).

    prefix: ids every name starts with, fed through the model's own decoder
    (the names are drawn from the model's distribution given the prefix);
    min_len: the end cannot be drawn before this many characters; top_p:
    nucleus sampling (1 = off).
    """

    prefix: tuple[int, ...] = ()
    min_len: int = 0
    top_p: float = 1.0


UNSTEERED = Steer()  # the default: no prefix, no minimum length, no nucleus (an immutable tuple, safe to share)


def steered_logits(logits_NxV: jax.Array, t: jax.Array, temperature: jax.Array, top_k: int, steer: Steer) -> jax.Array:
    """The logits of position t as drawn: the end masked before min_len, then top-k, then top-p."""
    if steer.min_len:
        end_N = jnp.where(t < steer.min_len, -jnp.inf, logits_NxV[:, BOUNDARY_ID])
        logits_NxV = logits_NxV.at[:, BOUNDARY_ID].set(end_N)
    return keep_top_p(keep_top_k(logits_NxV, top_k), steer.top_p, temperature)


def forced(ids_B: jax.Array, t: jax.Array, steer: Steer) -> jax.Array:
    """The prefix's id where position t lies in it, the drawn id after it."""
    if not steer.prefix:
        return ids_B
    prefix_P = jnp.asarray(steer.prefix, jnp.int32)
    return jnp.where(t < len(steer.prefix), prefix_P[jnp.minimum(t, len(steer.prefix) - 1)], ids_B)


STAGE_SHRINK = 8  # each stage of the sampling loop holds an eighth of the names of the one before
STAGE_MIN = 256  # and at least this many; fewer names run in one stage
FIRST_HORIZON = 16  # the first stage draws each name's first 16 uniforms only (most names end before)


def stage_sizes(n: int) -> tuple[int, ...]:
    """The batch sizes of the sampling loop's stages: n, then shrinking by STAGE_SHRINK down to STAGE_MIN."""
    sizes = [n]
    while sizes[-1] // STAGE_SHRINK >= STAGE_MIN:
        sizes.append(-(-sizes[-1] // STAGE_SHRINK))
    return tuple(sizes)


def batch_axes(decoder: Decoder, config: DecoderConfig, params: Params) -> tuple[int | None, ...] | None:
    """The batch axis of each leaf of the decoder state (None for a leaf that no name owns), in leaf order.

    Found by building the state's shapes for two batch sizes. None for the
    whole state when some leaf's batch is not one axis of the batch's size
    (e.g. batch × heads folded into one): then names are not compacted.
    """
    two, three = (jax.tree_util.tree_leaves(jax.eval_shape(partial(decoder.init, params, config, b))) for b in (2, 3))
    axes = []
    for x, y in zip(two, three):
        moved = [i for i, (p, q) in enumerate(zip(x.shape, y.shape)) if p != q]
        if moved and (len(moved) > 1 or (x.shape[moved[0]], y.shape[moved[0]]) != (2, 3)):
            return None
        axes.append(moved[0] if moved else None)
    return tuple(axes)


@partial(jax.jit, static_argnames=("decoder", "config", "n", "max_len", "top_k", "steer"))
def sample_ids(
    decoder: Decoder,
    config: DecoderConfig,
    params: Params,
    key: jax.Array,
    n: int,
    max_len: int,
    temperature: jax.Array,
    top_k: int = 0,
    steer: Steer = UNSTEERED,
    first: jax.Array | int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Generate the n sequences at stream positions first .. first + n − 1: at most max_len ids after the start
    boundary each.

    Returns ids (n, max_len) int32, each row zero from its end boundary on, and
    ended (n,) bool: False where a row was cut at max_len characters. first
    (a uint32, traced: every chunk of a stream runs the same program) only
    chooses the names' keys, ``fold_in(key, first + i)``.

    The loop runs in stages of shrinking batch size (``stage_sizes``): once
    the names still running fit the next stage, they and their decoder state
    move into it, so finished names stop costing steps. The first stage draws
    each name's first FIRST_HORIZON uniforms only; the names still running
    after it go on in groups the size of the second stage (one group unless
    they run long), each group drawing its names' uniforms in full. A name's
    draws depend only on its own uniforms, so the stages change no name.
    steer: a prefix every name starts with, a shortest length, top-p (``Steer``).
    """
    # float32 products in full, on GPUs too (whose default is TF32, ~1e-3 off): a name flips wherever a
    # uniform falls between the two machines' running sums, so without this the same key would give
    # other names on a GPU than on a CPU
    with jax.default_matmul_precision("highest"):
        next_ids, axes, sizes = _next_ids_and_stages(decoder, config, params, n, temperature, top_k, steer)
        length = max_len + 1  # ids drawn per name at most: max_len characters and the end
        zeros_N = jnp.zeros((n,), jnp.int32)
        slots = (jnp.int32(0), decoder.init(params, config, n), zeros_N, zeros_N.astype(bool))  # t, state, id, ended
        ids_LxN = jnp.zeros((length, n), jnp.int32)
        if len(sizes) == 1 or axes is None:  # axes None: one stage (stage_sizes only with axes)
            _, ids_LxN = _run_stage(
                next_ids, chunk_uniforms(key, n, length, first), None, None, length, None, slots, ids_LxN
            )
        else:
            # a short draw is the start of the full one only with partitionable Threefry
            horizon = min(FIRST_HORIZON, length) if draws_extend(key) else length
            slots, ids_LxN = _run_stage(
                next_ids, chunk_uniforms(key, n, horizon, first), None, None, horizon, sizes[1], slots, ids_LxN
            )
            ids_LxN = _run_groups(next_ids, key, first, sizes[1:], axes, length, slots, ids_LxN)
        # a row not ended ran to t = max_len; a row holds a drawn boundary exactly where it ended
        return ids_LxN.T[:, :max_len], jnp.any(ids_LxN == BOUNDARY_ID, axis=0)


def _next_ids_and_stages(
    decoder: Decoder,
    config: DecoderConfig,
    params: Params,
    n: int,
    temperature: jax.Array,
    top_k: int,
    steer: Steer,
) -> tuple[NextIds, tuple[int | None, ...] | None, tuple[int, ...]]:
    """How sample_ids steps its names, called while it traces: (next_ids, the state's batch axes, stage sizes).

    A table model inverts each row of its table once (``_table_next_ids``);
    any other model steps its decoder and draws from the steered logits. Axes
    None (a state whose names cannot be compacted) means one stage of n.
    """
    if decoder.table is not None:  # the next id depends on the current one alone: invert each row once
        return _table_next_ids(decoder.table(params), temperature, top_k, steer), (), stage_sizes(n)

    def next_ids(state: State, token_B: jax.Array, t: jax.Array, u_B: jax.Array) -> tuple[jax.Array, State]:
        logits_BxV, state = decoder.step(params, state, token_B, t)
        return forced(pick(steered_logits(logits_BxV, t, temperature, top_k, steer), u_B, temperature), t, steer), state

    axes = batch_axes(decoder, config, params)
    return next_ids, axes, stage_sizes(n) if axes is not None else (n,)


def _table_next_ids(table_VxV: jax.Array, temperature: jax.Array, top_k: int, steer: Steer) -> NextIds:
    """next_ids for a table model: each row of the steered table inverted once, not every name's logits at every step.

    With min_len there are two tables, with and without the end, chosen by t.
    """
    T = jnp.where(temperature > 0, temperature, 1.0)

    def prepared(t):
        table = steered_logits(table_VxV, t, temperature, top_k, steer)
        return tempered_cdf(table, T), jnp.argmax(table, axis=-1).astype(jnp.int32)

    late, early = prepared(jnp.int32(steer.min_len)), (prepared(jnp.int32(0)) if steer.min_len else None)

    def next_ids(state: State, token_B: jax.Array, t: jax.Array, u_B: jax.Array) -> tuple[jax.Array, State]:
        def draw(cdf_greedy: tuple[jax.Array, jax.Array]) -> jax.Array:
            cdf_VxV, greedy_V = cdf_greedy
            return jnp.where(temperature > 0, invert_rows(cdf_VxV, token_B, u_B), greedy_V[token_B])

        if early is None:
            drawn_B = draw(late)
        else:
            drawn_B = jax.lax.cond(t < steer.min_len, lambda: draw(early), lambda: draw(late))
        return forced(drawn_B, t, steer), state

    return next_ids


def _run_stage(
    next_ids: NextIds,
    u_HxC: jax.Array,
    cols_B: jax.Array | None,
    names_B: jax.Array | None,
    horizon: int,
    next_size: int | None,
    slots: Slots,
    ids_LxN: jax.Array,
) -> tuple[Slots, jax.Array]:
    """Step the slots of one stage while t < horizon, some name runs and, before the last stage, more run
    than next_size slots hold. Returns the slots and ids_LxN.

    slots: (t, decoder state, current id, ended) of the stage's B slots;
    slot b reads uniforms u_HxC[t, cols_B[b]] and writes its ids at column
    names_B[b] of ids_LxN (n for an empty slot, whose writes are dropped);
    None for either: slot b's column is b.
    """

    def going(carry):
        t, _, _, ended_B, _ = carry
        go = (t < horizon) & ~jnp.all(ended_B)
        return go if next_size is None else go & (jnp.sum(~ended_B) > next_size)

    def step(carry):
        t, state, token_B, ended_B, ids_LxN = carry
        nxt_B, state = next_ids(state, token_B, t, u_HxC[t] if cols_B is None else u_HxC[t][cols_B])
        nxt_B = jnp.where(ended_B, BOUNDARY_ID, nxt_B)
        if names_B is None:
            ids_LxN = jax.lax.dynamic_update_index_in_dim(ids_LxN, nxt_B, t, axis=0)
        else:
            ids_LxN = ids_LxN.at[t, names_B].set(nxt_B, mode="drop")
        return t + 1, state, nxt_B, ended_B | (nxt_B == BOUNDARY_ID), ids_LxN

    t, state, token_B, ended_B, ids_LxN = jax.lax.while_loop(going, step, (*slots, ids_LxN))
    return (t, state, token_B, ended_B), ids_LxN


def _run_groups(
    next_ids: NextIds,
    key: jax.Array,
    first_name: jax.Array | int,
    sizes: tuple[int, ...],
    axes: tuple[int | None, ...],
    length: int,
    first: Slots,
    ids_LxN: jax.Array,
) -> jax.Array:
    """The names still running after the first stage, in groups of sizes[0] (a while loop over the groups,
    usually one), each through the stages `sizes` with its names' uniforms drawn in full (name i at stream
    position first_name + i)."""
    t, state, token_N, ended_N = first
    n, G = token_N.shape[0], sizes[0]
    order = jnp.nonzero(~ended_N, size=-(-n // G) * G, fill_value=n)[0]  # the running names, then n
    running = jnp.sum(~ended_N)

    def group(carry):
        g, ids_LxN = carry
        names_G = jax.lax.dynamic_slice_in_dim(order, g * G, G)
        filled_G = names_G < n
        pos_G = jnp.where(filled_G, names_G, 0)
        slots = (t, _take_slots(state, pos_G, axes), token_N[pos_G], ~filled_G)
        u_LxG = selected_uniforms(key, names_G, length, first_name)
        cols_B: jax.Array | None = None
        names_B: jax.Array = names_G
        next_sizes: tuple[int | None, ...] = (*sizes[1:], None)
        for next_size in next_sizes:
            slots, ids_LxN = _run_stage(next_ids, u_LxG, cols_B, names_B, length, next_size, slots, ids_LxN)
            if next_size is not None:
                slots, cols_B, names_B = _compact(slots, cols_B, names_B, axes, next_size, n)
        return g + 1, ids_LxN

    return jax.lax.while_loop(lambda carry: carry[0] * G < running, group, (jnp.int32(0), ids_LxN))[1]


def _take_slots(state: State, pos_S: jax.Array, axes: tuple[int | None, ...]) -> State:
    """The decoder state of the slots pos_S, along each leaf's batch axis."""
    leaves, tree = jax.tree_util.tree_flatten(state)
    return jax.tree_util.tree_unflatten(
        tree, [x if ax is None else jnp.take(x, pos_S, axis=ax) for x, ax in zip(leaves, axes)]
    )


def _compact(
    slots: Slots, cols_B: jax.Array | None, names_B: jax.Array, axes: tuple[int | None, ...], size: int, n: int
) -> tuple[Slots, jax.Array, jax.Array]:
    """The running slots moved into a stage of `size` slots (they fit); the rest empty and ended.

    Returns the new slots and each new slot's uniform column and name.
    """
    t, state, token_B, ended_B = slots
    B = token_B.shape[0]
    pos_S = jnp.nonzero(~ended_B, size=size, fill_value=B)[0]
    filled_S = pos_S < B
    pos_S = jnp.where(filled_S, pos_S, 0)
    cols_S = pos_S if cols_B is None else cols_B[pos_S]
    compacted = (t, _take_slots(state, pos_S, axes), token_B[pos_S], ~filled_S)
    return compacted, cols_S, jnp.where(filled_S, names_B[pos_S], n)


MAX_NAMES = 2**32  # names one seed can give: name i's key is fold_in(key, i), and fold_in takes a uint32
MAX_SAMPLE_LEN = 10 * MAX_WORD_LEN  # characters a drawn name may have: ten times the longest word a word list may hold
TEMPERATURE_CAP = 1e30  # above it every allowed character is equally likely in float32 anyway; float32(1e39) is inf


def check_sizes(n: int, max_len: int | None = None) -> None:
    """Refuse, before any work, a number of names or a maximum length the sampler cannot hold to."""
    if n > MAX_NAMES:
        raise MakemoreError(
            f"at most {MAX_NAMES:,} names can be drawn with one seed (name i's key is fold_in(key, i), "
            f"and i is a 32-bit unsigned integer), asked for {n:,}"
        )
    if max_len is not None and max_len > MAX_SAMPLE_LEN:
        raise MakemoreError(f"maximum length must be at most {MAX_SAMPLE_LEN:,} characters, got {max_len:,}")


def validate_sampling(n: int, max_len: int, temperature: float, top_k: int = 0, steer: Steer = UNSTEERED) -> None:
    if n < 0:
        raise MakemoreError(f"number of samples must be >= 0, got {n}")
    if max_len < 1:
        raise MakemoreError(f"maximum length must be >= 1, got {max_len}")
    check_sizes(n, max_len)
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise MakemoreError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k < 0:
        raise MakemoreError(f"top-k must be >= 0 (0 = off), got {top_k}")
    if not (0 < steer.top_p <= 1):
        raise MakemoreError(f"top-p must be in (0, 1] (1 = off), got {steer.top_p}")
    if steer.min_len < 0:
        raise MakemoreError(f"minimum length must be >= 0, got {steer.min_len}")
    if steer.min_len > max_len:
        raise MakemoreError(f"minimum length {steer.min_len} is more than the maximum length {max_len}")
    if len(steer.prefix) > max_len:
        raise MakemoreError(f"the prefix has {len(steer.prefix)} characters, more than the maximum length {max_len}")


def float32_temperature(temperature: float) -> jax.Array:
    """The temperature as the sampler uses it: float32, a huge one lowered to TEMPERATURE_CAP (no overflow,
    no warning)."""
    return jnp.float32(min(float(temperature), TEMPERATURE_CAP))


def steering(vocab: Vocabulary, prefix: str = "", min_len: int = 0, top_p: float = 1.0) -> Steer:
    """The Steer of a prefix given as text; a character the vocabulary lacks is a MakemoreError."""
    unknown = sorted({ch for ch in prefix if ch not in vocab.chars})
    if unknown:
        raise MakemoreError(f"prefix {prefix!r}: {', '.join(map(repr, unknown))} not in the model's vocabulary")
    ids = vocab.encode_stream([prefix])[1:-1] if prefix else ()
    return Steer(tuple(int(i) for i in ids), int(min_len), float(top_p))


def decode_rows(ids_NxL: np.ndarray, vocab: Vocabulary) -> list[str]:
    """Rows of ids to strings, each cut at its first boundary id."""
    return [vocab.decode(row) for row in np.asarray(ids_NxL)]


def sample_names(
    key: jax.Array,
    logits_VxV: jax.Array,
    vocab: Vocabulary,
    n: int,
    *,
    max_len: int = 50,
    temperature: float = 1.0,
    top_k: int = 0,
) -> list[str]:
    """n names from a bigram logits table (W, or log P of a counting model).

    Same key, same table -> the same names, on any machine. temperature 0 is
    greedy; names longer than max_len are cut there.
    """
    validate_sampling(n, max_len, temperature, top_k)
    if n == 0:
        return []
    params = {"W": jnp.asarray(logits_VxV, jnp.float32)}
    ids, _ = sample_ids(bigram.DECODER, None, params, key, n, max_len, float32_temperature(temperature), top_k)
    return decode_rows(ids, vocab)


def plan(model: AnyFitted, max_len: int | None, fast: bool = True) -> tuple[Decoder, DecoderConfig, Params, int]:
    """(decoder, config, params, max_len) for sample_ids to draw from a fitted model, through its runner.

    Sequence models generate at most block_size - 1 characters (the longest
    word they were built for); max_len may lower that. Models whose decoder
    goes on past the block (``Runner.any_length``: tables, n-grams, mixtures
    of such models) take any max_len up to MAX_SAMPLE_LEN, and default to
    ``Runner.longest_sample``. fast=False takes the recompute path where the
    model has one (it holds block_size ids, so it is bounded by the block).
    """
    run = model.runner
    decoder, unbounded = run.sampler(fast)
    if max_len is None:  # the longest the model allows, never past the sampler's bound
        max_len = min(run.longest_sample, MAX_SAMPLE_LEN)
    elif not unbounded:
        max_len = min(max_len, model.block_size - 1)
    return decoder, run.config, run.params, max_len


CHUNK_BYTES = 64 << 20  # what one chunk of names may hold: ids, uniforms, per-step logits, decoder state
CHUNK_MAX = 4096  # names in one chunk at most (a few thousand: the stages shrink from here)


def chunk_size(decoder: Decoder, config: DecoderConfig, params: Params, max_len: int, vocab_size: int) -> int:
    """How many names one compiled call draws: CHUNK_BYTES over what a name holds, at most CHUNK_MAX.

    A name holds its ids and uniforms (max_len + 1 of each), a few rows of
    vocab_size logits per step, and its share of the decoder state (found from
    the state's shapes for one and two names: a key/value cache grows with
    the block, a carried state with the width).
    """
    one, two = (
        sum(
            x.size * x.dtype.itemsize
            for x in jax.tree_util.tree_leaves(jax.eval_shape(partial(decoder.init, params, config, b)))
        )
        for b in (1, 2)
    )
    per_name = 4 * (2 * (max_len + 1) + 4 * vocab_size) + (two - one)
    return max(1, min(CHUNK_MAX, CHUNK_BYTES // per_name))


def name_chunks(
    model: AnyFitted,
    key: jax.Array,
    n: int,
    *,
    max_len: int | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    fast: bool = True,
    steer: Steer = UNSTEERED,
    start: int = 0,
    chunk: int | None = None,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """The names at stream positions start .. start + n − 1 of a Fitted, in chunks as they are drawn.

    Yields (names, ended) per chunk: ended (len(names),) bool, False where a
    name was cut at max_len. n up to one chunk is one call of n names; past
    that every call draws a full chunk (the last one's extra names dropped), so
    one program serves the whole stream. Checks the request before any work.
    chunk: the chunk size where the caller has it already (``chunk_size``).
    """
    decoder, config, params, max_len = plan(model, max_len, fast)
    validate_sampling(n, max_len, temperature, top_k, steer)
    if start < 0 or start + n > MAX_NAMES:
        raise MakemoreError(f"stream positions {start:,} .. {start + n - 1:,} are past the last one, {MAX_NAMES - 1:,}")
    if n == 0:
        return
    size = min(n, chunk if chunk is not None else chunk_size(decoder, config, params, max_len, model.vocab.size))
    T = float32_temperature(temperature)
    for first in range(start, start + n, size):
        ids, ended = sample_ids(decoder, config, params, key, size, max_len, T, top_k, steer, jnp.uint32(first))
        keep = min(size, start + n - first)
        yield decode_rows(np.asarray(ids)[:keep], model.vocab), np.asarray(ended)[:keep]


class SampleOptions(TypedDict, total=False):
    """The options of name_chunks that generate and sample_stream hand on to it."""

    max_len: int | None
    temperature: float
    top_k: int
    fast: bool
    steer: Steer


def generate(
    model: AnyFitted, key: jax.Array, n: int, **options: Unpack[SampleOptions]
) -> tuple[list[str], np.ndarray]:
    """n names from a Fitted, and whether each ended by itself: (list of n str, (n,) bool).

    The names of ``name_chunks`` at positions 0 .. n − 1, gathered; options are
    its own (max_len, temperature, top_k, fast, steer). Sequence models
    generate at most block_size - 1 characters (the longest word they were
    built for); max_len may lower that. fast=False forces the recompute path,
    to check the model's incremental decoder against it.
    """
    names: list[str] = []
    ended = [np.zeros((0,), bool)]
    for chunk, ended_chunk in name_chunks(model, key, n, **options):
        names += chunk
        ended.append(ended_chunk)
    return names, np.concatenate(ended)


REDRAW_FACTOR = 20  # stream positions walked per name asked for, when names must be unique, new or long enough
REDRAW_EXTRA = 2000  # and this many more
REDRAW_IDLE = 20000  # and stop after this many positions in a row gave no name that qualifies
REDRAW_CHUNK_MIN = 256  # a redraw draws at least this many positions (powers of two: few programs to compile)


class NotEnough(MakemoreError):
    """Fewer names met the constraints than were asked for, within the bounded redraws; .names has them
    (empty where ``sample_stream`` handed them out already)."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


def sample_stream(
    model: AnyFitted,
    key: jax.Array,
    n: int,
    *,
    unique: bool = False,
    exclude: AbstractSet[str] = frozenset(),
    **options: Unpack[SampleOptions],
) -> Iterator[list[str]]:
    """The first n names of the stream (positions 0, 1, 2, ...) that qualify, in chunks as they are drawn.

    A name qualifies unless it repeats an earlier kept one (unique), is in
    exclude, or is shorter than steer.min_len (the model had no mass left
    but the end, which min_len masks: the name is stuck). Without a
    constraint these are positions 0 .. n − 1, exactly; with one the plain
    names stay where they qualify, and the first k of n are the first k of any
    more. The walk is bounded: at most REDRAW_FACTOR·n + REDRAW_EXTRA
    positions (and MAX_NAMES), and it stops after REDRAW_IDLE positions in a
    row with no qualifying name; then NotEnough says how many were found in
    how many draws (its .names empty: they were yielded). options: those of
    ``name_chunks``.
    """
    steer = options.get("steer", UNSTEERED)
    min_len = steer.min_len
    if not (unique or exclude or min_len):
        for names, _ in name_chunks(model, key, n, **options):
            yield names
        return
    decoder, config, params, max_len = plan(model, options.get("max_len"), options.get("fast", True))
    validate_sampling(n, max_len, options.get("temperature", 1.0), options.get("top_k", 0), steer)
    budget = min(REDRAW_FACTOR * n + REDRAW_EXTRA, MAX_NAMES)
    chunk = chunk_size(decoder, config, params, max_len, model.vocab.size)
    seen: set[str] = set()
    found, walked, idle, long_enough = 0, 0, 0, 0
    while found < n and walked < budget and idle < REDRAW_IDLE:
        size = _walk_size(n, found, walked, chunk)
        kept: list[str] = []
        for names, _ in name_chunks(model, key, size, start=walked, chunk=chunk, **options):  # chunk: found once
            for name in names:
                if found == n or walked == budget or idle == REDRAW_IDLE:
                    break
                walked += 1
                long_enough += len(name) >= min_len
                if len(name) < min_len or name in exclude or (unique and name in seen):
                    idle += 1
                    continue
                idle = 0
                found += 1
                kept.append(name)
                if unique:
                    seen.add(name)
        if kept:
            yield kept
    if found < n:
        raise _not_enough(n, found, walked, long_enough, unique, bool(exclude), min_len)


def _walk_size(n: int, found: int, walked: int, chunk: int) -> int:
    """How many stream positions sample_stream's next draw walks, having walked `walked` and found `found` of n.

    The first draw is the plain one's (n); redraws ask for twice the names
    still missing, rounded up to a power of two (few compiled sizes) and at
    least REDRAW_CHUNK_MIN; never more than a chunk or the positions left.
    """
    wanted = max(REDRAW_CHUNK_MIN, 1 << (2 * (n - found) - 1).bit_length())
    return min(n if walked == 0 else wanted, chunk, MAX_NAMES - walked)


def _not_enough(
    n: int, found: int, walked: int, long_enough: int, unique: bool, new_only: bool, min_len: int
) -> NotEnough:
    """The NotEnough of a walk that found only `found` of n qualifying names in `walked` draws.

    long_enough: how many of the drawn names had at least min_len
    characters; none at all means the model never gives one, which it says.
    """
    if min_len and not long_enough:
        return NotEnough(
            f"the model gives no name of at least {counted(min_len, 'character')}: none in "
            f"{counted(walked, 'draw')} (asked for {n:,})",
            [],
        )
    what = " ".join(w for w, on in (("unique", unique), ("new", new_only)) if on)
    how_many = counted(found, f"{what} name".strip())
    if min_len:
        how_many += f" of at least {counted(min_len, 'character')}"
    return NotEnough(f"found only {how_many} in {counted(walked, 'draw')} (asked for {n:,})", [])
