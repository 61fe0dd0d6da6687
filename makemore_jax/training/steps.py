"""What one optimizer step computes, and many of them in one compiled call.

``run_steps`` is the whole inner loop: a ``lax.scan`` of value_and_grad plus an
optax update, jitted once per (loss, optimizer, chunk length). Batches are drawn
inside it from ``fold_in(batch_key, step)`` (``drawn_rows``), so the data order
depends only on the seed and the step: a run resumed from a checkpoint sees
exactly the batches an uninterrupted run would. The losses here are the
step's: the full-batch bigram's from counts, and the sequence models' mean NLL
per character over a drawn batch, padded or packed (see ``data.packing``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..data import packing
from ..models import ModelDef, Params
from ..models.losses import l2_penalty
from .config import TrainConfig
from .evaluate import masked_nll_sum

# A step's inputs by name: the count table, or the rows, their lengths and the keys (host or device
# arrays as the trainer builds them, traced ones inside the step).
BatchData = dict[str, Any]
OptState = Any  # an optax optimizer state: a pytree of arrays
LossFn = Callable[[Params, BatchData, jax.Array], jax.Array]  # (params, batch data, step) -> scalar loss
SumsFn = Callable[..., tuple[jax.Array, jax.Array]]  # (params, *args) -> (total NLL, positions counted)


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "num_steps", "unroll"))
def run_steps(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    params: Params,
    opt_state: OptState,
    batch_data: BatchData,
    first_step: jax.Array | int,
    num_steps: int,
    unroll: int = 1,
) -> tuple[Params, OptState, jax.Array]:
    """num_steps optimizer steps in one scan; loss_fn(params, batch_data, step) -> scalar.

    unroll steps run per loop iteration (the same arithmetic: only the loop's
    own cost changes). Returns (params, opt_state, losses of each step).
    """

    def one_step(carry, step):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, batch_data, step)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    steps = first_step + jnp.arange(num_steps, dtype=jnp.int32)
    (params, opt_state), losses = jax.lax.scan(
        one_step, (params, opt_state), steps, unroll=max(min(unroll, num_steps), 1)
    )
    return params, opt_state, losses


GPU_FULL_BATCH_UNROLL = 25  # measured on an H200: 100 steps in 0.69 ms against 1.26 ms one step per iteration


def full_batch_unroll() -> int:
    """Steps per loop iteration for the full-batch bigram, whose step is a few µs of V×V work.

    On a GPU each loop iteration costs a round trip to the host for its
    condition and a launch per kernel, as much as the step itself, so 25
    steps go in one iteration; on a CPU the loop is nearly free and
    unrolling only lengthens the compile (measured equal). Chosen by JAX's
    default device, where fit runs.
    """
    (device,) = jnp.zeros(()).devices()
    return GPU_FULL_BATCH_UNROLL if device.platform == "gpu" else 1


def full_batch_loss(loss_counts: Callable[[Params, jax.Array, float], jax.Array], l2: float) -> LossFn:
    """A table model (the neural bigram) over all training pairs, through their count matrix (V×V work per step).

    loss_counts: the model's own (ModelDef.loss_counts).
    """

    def loss_fn(params, batch_data, step):
        return loss_counts(params, batch_data["counts"], l2)

    return loss_fn


def drawn_rows(batch_key: jax.Array, step: jax.Array | int, batch_size: int, num_words: int) -> jax.Array:
    """The rows of the words that step's batch draws: batch_size of [0, num_words), with replacement."""
    return jax.random.randint(jax.random.fold_in(batch_key, step), (batch_size,), 0, num_words)


def _cond_sums(
    pred: jax.typing.ArrayLike,
    true_sums: SumsFn,
    false_sums: SumsFn,
    params: Params,
    true_args: tuple,
    false_args: tuple,
) -> tuple[jax.Array, jax.Array]:
    """lax.cond between two (total, count) functions of params, each branch differentiated inside itself.

    The same values and gradients as differentiating the plain lax.cond. Under
    autodiff a cond's forward pass hands its backward pass the residuals of
    both branches; XLA:CPU copied each of them out of the cond, about a hundred
    buffer copies per Transformer step (2.6 ms of a 19 ms step's thread time
    on a 2-core CPU). Here each branch takes its own value_and_grad, and only
    the gradient, one buffer per parameter, leaves the cond.
    """

    @jax.custom_vjp
    def sums(params, operands):
        pred, true_args, false_args = operands
        return jax.lax.cond(pred, lambda p: true_sums(p, *true_args), lambda p: false_sums(p, *false_args), params)

    def sums_fwd(params, operands):  # ((total, count), gradient of total) of the branch pred picks
        pred, true_args, false_args = operands

        def with_gradient(fn, args):
            return jax.value_and_grad(lambda p: fn(p, *args), has_aux=True)

        return jax.lax.cond(pred, with_gradient(true_sums, true_args), with_gradient(false_sums, false_args), params)

    def sums_bwd(grads, cotangents):
        g_total = cotangents[0]
        return jax.tree_util.tree_map(lambda g: g * g_total, grads), None

    sums.defvjp(sums_fwd, sums_bwd)
    return sums(params, (pred, true_args, false_args))


def sequence_loss(
    apply: Callable[..., jax.Array],
    l2: float,
    batch_size: int,
    dropout: float = 0.0,
    num_words: int | None = None,
    place_batch: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]] | None = None,
    apply_packed: Callable[..., jax.Array] | None = None,
    capacity: int = 0,
) -> LossFn:
    """Mean cross-entropy per position of a batch of words (+ λ·mean(param²)).

    batch_size words are drawn with replacement from fold_in(key, step); 0
    means every training word at every step. With dropout > 0 the forward pass
    is apply(..., key=fold_in(dropout key, step), rate=dropout): a model that
    takes the dropout setting. Data-parallel
    training (see parallel) pads the rows to a multiple of the device
    count: num_words says how many are real, and place_batch(tokens, lengths)
    lays the drawn batch out over the devices.

    With apply_packed and a capacity (see ``packing``), the drawn words are
    packed end to end into capacity slots instead of one padded row each; a
    batch that does not fit runs padded. Both give the same loss and gradients
    (float32 rounding apart).
    """
    if capacity and apply_packed is None:
        raise ValueError("a packing capacity needs the model's apply_packed")
    sums = _batch_sums(apply, dropout, apply_packed, capacity)

    def loss_fn(params, batch_data, step):
        tokens, lengths = batch_data["tokens"], batch_data["lengths"]
        if batch_size:
            idx = drawn_rows(batch_data["key"], step, batch_size, num_words or tokens.shape[0])
            if "row_of" in batch_data:  # a multi-host run's rows sit where they were parsed
                idx = batch_data["row_of"][idx]
            tokens, lengths = tokens[idx], lengths[idx]
        if place_batch is not None:
            tokens, lengths = place_batch(tokens, lengths)
        dropout_key = jax.random.fold_in(batch_data["dropout_key"], step) if dropout else None
        total, count = sums(params, tokens, lengths, dropout_key)
        loss = total / count
        return loss + l2 * l2_penalty(params) if l2 else loss

    return loss_fn


def _batch_sums(
    apply: Callable[..., jax.Array],
    dropout: float,
    apply_packed: Callable[..., jax.Array] | None,
    capacity: int,
) -> SumsFn:
    """sums(params, tokens, lengths, dropout_key) -> (total NLL, positions counted) of a drawn batch (sequence_loss's).

    The rows as they are, padded; or, with a capacity, packed end to end into
    capacity slots where they fit and padded where they do not (``_cond_sums``).
    The forward pass drops out when dropout > 0 (apply's key and rate);
    sequence_loss has checked that the model offers what the settings ask for.
    """

    def padded_sums(params, tokens, lengths, dropout_key):
        if dropout:
            logits = apply(params, tokens[:, :-1], key=dropout_key, rate=dropout)
        else:
            logits = apply(params, tokens[:, :-1])
        return masked_nll_sum(logits, tokens[:, 1:], lengths)

    def packed_sums(params, packed, dropout_key):
        assert apply_packed is not None  # checked by sequence_loss: packed_sums runs only with a capacity
        logits = apply_packed(params, packed.inputs, packed.positions, packed.segments, dropout_key, dropout)
        return packing.packed_nll_sum(logits, packed)

    def packed_or_padded_sums(params, tokens, lengths, dropout_key):
        row_len = tokens.shape[1] - 1
        packed = packing.pack(tokens, lengths, capacity, row_len)
        return _cond_sums(
            packed.fits, packed_sums, padded_sums, params, (packed, dropout_key), (tokens, lengths, dropout_key)
        )

    return packed_or_padded_sums if capacity else padded_sums


def learning_rate(cfg: TrainConfig) -> float | optax.Schedule:
    """Constant, or linear warmup then cosine decay to cfg.min_lr over cfg.steps."""
    if cfg.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, cfg.lr, cfg.warmup_steps, max(cfg.steps, cfg.warmup_steps + 1), cfg.min_lr
        )
    if cfg.warmup_steps:
        return optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps), optax.constant_schedule(cfg.lr)],
            [cfg.warmup_steps],
        )
    return cfg.lr


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """SGD (the lecture) or AdamW with makemore's betas 0.9/0.99 and eps 1e-8; optional clipping."""
    lr = learning_rate(cfg)
    if cfg.optimizer == "sgd":
        opt = optax.sgd(lr)
    else:
        opt = optax.adamw(lr, b1=0.9, b2=0.99, eps=1e-8, weight_decay=cfg.weight_decay)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt) if cfg.grad_clip else opt


def packing_capacity(cfg: TrainConfig, model_def: ModelDef, lengths: np.ndarray, block_size: int) -> int:
    """Slots of a packed batch, or 0 for padded batches (packing off, not offered, or no smaller).

    A batch of the whole split (batch_size 0) is packed into exactly the
    slots it needs; a drawn batch into packing.capacity_for's bound.
    """
    if not cfg.pack or model_def.apply_packed is None or len(lengths) == 0:
        return 0
    if cfg.batch_size == 0:
        capacity = -(-int(np.sum(lengths + 1)) // block_size) * block_size
        return capacity if capacity < len(lengths) * block_size else 0
    capacity = packing.capacity_for(lengths, cfg.batch_size, block_size)
    return capacity if capacity < cfg.batch_size * block_size else 0
