"""One trainer for every model: many optimizer steps per compiled call.

``run_steps`` is the whole inner loop: a ``lax.scan`` of value_and_grad plus an
optax update, jitted once per (loss, optimizer, chunk length). Batches are drawn
inside it from ``fold_in(batch_key, step)``, so the data order depends only on
the seed and the step: a run resumed from a checkpoint sees exactly the batches
an uninterrupted run would. Python runs only between chunks, to log, evaluate
and save.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import packing
from .config import TrainConfig
from .counts import count_matrix
from .data import Dataset
from .errors import MakemoreError
from .evaluate import masked_nll_sum, split_nll
from .models import bigram, check_config, get_model
from .seeding import seed_key
from .trained import TrainedModel


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "num_steps", "unroll"))
def run_steps(loss_fn, optimizer, params, opt_state, batch_data, first_step, num_steps: int, unroll: int = 1):
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
    (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), steps, unroll=max(min(unroll, num_steps), 1))
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


def mean_square(params) -> jax.Array:
    """mean(p²) over every parameter: λ times this is the L2 penalty."""
    leaves = jax.tree_util.tree_leaves(params)
    return sum(jnp.sum(jnp.square(p)) for p in leaves) / sum(p.size for p in leaves)


def full_batch_loss(l2: float):
    """Neural bigram over all training pairs, through their count matrix (V×V work per step)."""

    def loss_fn(params, batch_data, step):
        return bigram.loss_counts(params, batch_data["counts"], l2)

    return loss_fn


def drawn_rows(batch_key: jax.Array, step, batch_size: int, num_words: int) -> jax.Array:
    """The rows of the words that step's batch draws: batch_size of [0, num_words), with replacement."""
    return jax.random.randint(jax.random.fold_in(batch_key, step), (batch_size,), 0, num_words)


def _cond_sums(pred, true_sums, false_sums, params, true_args: tuple, false_args: tuple):
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


def sequence_loss(apply, l2: float, batch_size: int, apply_dropout=None, dropout: float = 0.0,
                  num_words: int | None = None, place_batch=None, apply_packed=None, capacity: int = 0):
    """Mean cross-entropy per position of a batch of words (+ λ·mean(param²)).

    batch_size words are drawn with replacement from fold_in(key, step); 0
    means every training word at every step. With dropout > 0 the forward pass
    is apply_dropout, keyed by fold_in(dropout key, step). Data-parallel
    training (see distributed) pads the rows to a multiple of the device
    count: num_words says how many are real, and place_batch(tokens, lengths)
    lays the drawn batch out over the devices.

    With apply_packed and a capacity (see ``packing``), the drawn words are
    packed end to end into capacity slots instead of one padded row each; a
    batch that does not fit runs padded. Both give the same loss and gradients
    (float32 rounding apart).
    """
    if capacity and apply_packed is None:
        raise ValueError("a packing capacity needs the model's apply_packed")

    def padded_sums(params, tokens, lengths, dropout_key):
        if dropout:
            logits = apply_dropout(params, tokens[:, :-1], dropout_key, dropout)
        else:
            logits = apply(params, tokens[:, :-1])
        return masked_nll_sum(logits, tokens[:, 1:], lengths)

    def packed_sums(params, packed, dropout_key):
        logits = apply_packed(params, packed.inputs, packed.positions, packed.segments, dropout_key, dropout)
        return packing.packed_nll_sum(logits, packed)

    def packed_or_padded_sums(params, tokens, lengths, dropout_key):
        row_len = tokens.shape[1] - 1
        packed = packing.pack(tokens, lengths, capacity, row_len)
        return _cond_sums(packed.fits, packed_sums, padded_sums, params, (packed, dropout_key),
                          (tokens, lengths, dropout_key))

    sums = packed_or_padded_sums if capacity else padded_sums

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
        return loss + l2 * mean_square(params) if l2 else loss

    return loss_fn


def learning_rate(cfg: TrainConfig):
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


@dataclass
class TrainState:
    params: dict
    opt_state: object
    step: int = 0
    best_dev: float | None = None
    history: list[dict] = field(default_factory=list)


class Interrupted(Exception):
    """Ctrl-C during training; the state of the last finished chunk was handed to on_checkpoint."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


MAX_TABLE_VOCAB = 8192  # the counting and bigram models hold V×V tables: 256 MiB each at this size


def new_model(cfg: TrainConfig, data: Dataset, parallel=None) -> TrainedModel:
    """An untrained model for the data: vocabulary, block size, initial parameters.

    With parallel (a distributed.DataParallel) the counting model counts over its devices.
    """
    cfg.validate()
    block_size = cfg.block_size or data.max_word_len + 1
    if block_size < data.max_word_len + 1:
        raise MakemoreError(
            f"block size {block_size} is too small: the longest word has {data.max_word_len} characters, "
            f"so it must be at least {data.max_word_len + 1}"
        )
    V = data.vocab.size
    if cfg.type in ("counts", "bigram") and V > MAX_TABLE_VOCAB:
        raise MakemoreError(
            f"a vocabulary of {V:,} characters needs {V:,}×{V:,} tables ({V * V * 4 / 2**30:.1f} GiB each); "
            f"the {cfg.type} model takes at most {MAX_TABLE_VOCAB:,} (the other models have no such table)"
        )
    if cfg.type == "counts":
        xs, ys = data.pairs("train")
        counts = _count_pairs(xs, ys, data.vocab.size, parallel, data.local_only)
        params = {"counts": counts if parallel is None else parallel.readable(counts)}
        return TrainedModel(cfg, data.vocab, params, block_size)
    model = TrainedModel(cfg, data.vocab, {}, block_size)
    check_config(model.model_config, cfg.type)
    if cfg.dropout and model.model_def.apply_dropout is None:
        raise MakemoreError(f"--dropout: the {cfg.type} model has no dropout")
    model.params = get_model(cfg.type).init(seed_key(cfg.seed, "init"), model.model_config)
    if cfg.type == "bigram" and cfg.init_scale != 1.0:
        model.params = {"W": cfg.init_scale * model.params["W"]}
    return model


def _count_pairs(xs, ys, vocab_size: int, parallel=None, process_local: bool = False) -> jax.Array:
    if parallel is None:
        return count_matrix(jnp.asarray(xs), jnp.asarray(ys), vocab_size)
    from . import distributed

    return distributed.count_matrix(xs, ys, vocab_size, parallel, process_local)


def _loss_and_data(model: TrainedModel, data: Dataset, parallel=None):
    cfg = model.config
    if cfg.type == "bigram" and cfg.batch_size == 0:
        xs, ys = data.pairs("train")
        return full_batch_loss(cfg.l2), {"counts": _count_pairs(xs, ys, data.vocab.size, parallel, data.local_only)}
    keys = {"key": seed_key(cfg.seed, "batches"), "dropout_key": seed_key(cfg.seed, "dropout")}
    if parallel is None:
        tokens, lengths = data.padded("train", model.block_size)
        batch = {"tokens": jnp.asarray(tokens), "lengths": jnp.asarray(lengths), **keys}
        model_def = model.model_def
        capacity = packing_capacity(cfg, model_def, lengths, model.block_size)
        loss = sequence_loss(model.apply, cfg.l2, cfg.batch_size, model_def.apply_dropout, cfg.dropout,
                             apply_packed=model_def.apply_packed, capacity=capacity)
        return loss, batch
    parallel.check_batch(cfg.batch_size)
    if data.local_only:  # each process holds the rows it parsed; row_of says where each training row is
        tokens, lengths = parallel.hold_rows(data, model.block_size)
        keys["row_of"] = data.row_of
    else:
        tokens, lengths = parallel.shard_rows(data.words["train"], data.vocab, model.block_size)
    loss = sequence_loss(model.apply, cfg.l2, cfg.batch_size, model.model_def.apply_dropout, cfg.dropout,
                         num_words=data.sizes["train"], place_batch=parallel.place_batch)
    return loss, {"tokens": tokens, "lengths": lengths, **keys}


def packing_capacity(cfg: TrainConfig, model_def, lengths: np.ndarray, block_size: int) -> int:
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


def _next_stop(step: int, cfg: TrainConfig) -> int:
    def next_multiple(every):
        return (step // every + 1) * every

    return min(next_multiple(cfg.log_every), next_multiple(cfg.eval_every), cfg.steps)


def fit(
    model: TrainedModel,
    data: Dataset,
    state: TrainState | None = None,
    on_record: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[TrainedModel, TrainState, bool], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
    parallel=None,
) -> TrainState:
    """Train model.params in place of state (fresh if None) up to cfg.steps.

    After each chunk a record (step, loss, steps/s, and at evaluation steps the
    NLL of every split) goes to on_record; at each evaluation on_checkpoint(model, state,
    is_best_by_dev) is called. Non-finite loss stops the run with the step
    named, after handing the last good state to on_checkpoint. Ctrl-C, or
    stop_requested() turning true after a chunk (a signal deferred by the
    caller), hands the last finished state to on_checkpoint and raises
    Interrupted. With parallel (a distributed.DataParallel over several
    devices) the steps run data-parallel over its mesh, on the very batches a
    one-device run draws.
    """
    cfg = model.config
    optimizer = make_optimizer(cfg)
    if state is None:
        state = TrainState(model.params, optimizer.init(model.params))
    loss_fn, batch_data = _loss_and_data(model, data, parallel)
    unroll = full_batch_unroll() if cfg.type == "bigram" and cfg.batch_size == 0 else 1
    if parallel is not None:
        state.params, state.opt_state = parallel.place_state(state.params, state.opt_state)
        batch_data = parallel.place_inputs(batch_data)

    def readable(st: TrainState) -> TrainState:  # what evaluation and checkpoints read; st itself on one device
        if parallel is None:
            return st
        return replace(st, params=parallel.readable(st.params), opt_state=parallel.readable(st.opt_state))

    compiled: dict[int, object] = {}  # chunk length -> executable; compile time reported apart
    try:
        while state.step < cfg.steps:
            todo = _next_stop(state.step, cfg) - state.step
            record = {"step": state.step + todo}
            if todo not in compiled:
                t0 = time.perf_counter()
                if parallel is None:
                    lowered = run_steps.lower(loss_fn, optimizer, state.params, state.opt_state, batch_data, state.step, todo,
                                              unroll)
                    compiled[todo] = lowered.compile()
                else:
                    compiled[todo] = parallel.compile_steps(loss_fn, optimizer, state.params, state.opt_state, batch_data, todo,
                                                            unroll)
                record["compile_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            params, opt_state, losses = compiled[todo](state.params, state.opt_state, batch_data, state.step)
            losses = np.asarray(losses)
            elapsed = time.perf_counter() - t0
            if not np.isfinite(losses).all():
                bad = state.step + 1 + int(np.argmin(np.isfinite(losses)))
                if on_checkpoint:
                    on_checkpoint(model, readable(state), False)  # model.params are state.params, all finite
                raise MakemoreError(
                    f"loss became {losses[bad - state.step - 1]} at step {bad}; stopped "
                    f"(the last good state, step {state.step}, is what was saved; try a lower --lr)"
                )
            state.params, state.opt_state, state.step = params, opt_state, state.step + todo
            view = readable(state)
            model.params = view.params
            record.update(loss=float(losses.mean()), steps_per_s=todo / max(elapsed, 1e-9))
            is_eval = state.step % cfg.eval_every == 0 or state.step == cfg.steps
            is_best = False
            if is_eval:
                nll = split_nll(model, data)  # whole splits, one compiled call each
                record.update({f"{s}_nll": v for s, v in nll.items() if v is not None})
                dev = nll["dev"]
                is_best = dev is None or state.best_dev is None or dev < state.best_dev
                if is_best:
                    state.best_dev = dev
            state.history.append(record)
            if on_record:
                on_record(record)
            if is_eval and on_checkpoint:
                view.best_dev = state.best_dev
                on_checkpoint(model, view, is_best)
            if stop_requested is not None and stop_requested():
                raise KeyboardInterrupt  # saved below, at this step
    except KeyboardInterrupt:
        view = readable(state)
        model.params = view.params
        if on_checkpoint:
            on_checkpoint(model, view, False)
        raise Interrupted(state.step) from None
    return state


def train(words, cfg: TrainConfig, on_record: Callable[[dict], None] | None = None, parallel=None):
    """Split the words with cfg.seed, build the model and train it: the whole job from Python.

    Returns (model, state, data); model.params are the final parameters and
    state is None for the counting model. parallel: see fit.
    """
    cfg.validate()
    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    model = new_model(cfg, data, parallel)
    state = fit(model, data, None, on_record, parallel=parallel) if cfg.type != "counts" else None
    return model, state, data
