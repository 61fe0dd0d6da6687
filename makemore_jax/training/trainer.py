"""One trainer for every model: a new model for the data, then chunks of compiled steps.

``fit`` runs ``steps.run_steps`` a chunk at a time (many optimizer steps per
compiled call); Python runs only between chunks, to log, evaluate and save. A
run resumed from a checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..data.hosts import SlicedDataset
from ..data.words import Dataset, Vocabulary
from ..errors import MakemoreError
from ..models import Params, check_config, get_model
from ..models.losses import with_perplexities
from ..models.ngram import NgramCounts
from ..seeding import seed_key
from .config import TrainConfig
from .evaluate import split_nll
from .fitted import Fitted
from .parallel import DataParallel
from .parallel import count_matrix as count_matrix_over_devices  # counts.count_matrix itself on one device
from .parallel import count_ngram_rows as count_ngram_rows_over_devices
from .sizes import block_size_for
from .steps import (
    BatchData,
    LossFn,
    OptState,
    full_batch_loss,
    full_batch_unroll,
    make_optimizer,
    packing_capacity,
    run_steps,
    sequence_loss,
)

Record = dict[str, float]  # a line of the metrics: step, loss, steps_per_s, compile_s, <split>_nll, <split>_ppl
OnCheckpoint = Callable[[Fitted, "TrainState", bool], None]  # (model, state, is best by dev)


@dataclass
class TrainState:
    params: Params
    opt_state: OptState
    step: int = 0
    best_dev: float | None = None
    history: list[Record] = field(default_factory=list)


class Interrupted(Exception):
    """Ctrl-C during training; the state of the last finished chunk was handed to on_checkpoint."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step
        self.saved = True  # whether the state at step was written (a run told so by whoever saves)


class LossNotFinite(MakemoreError):
    """The loss became nan or inf at a step; the state of the last good step was handed to on_checkpoint."""

    def __init__(self, loss: float, step: int, good_step: int, saved: bool = True) -> None:
        what = f"the last good state, step {good_step:,}, is what was saved" if saved else "nothing was saved"
        super().__init__(f"loss became {loss} at step {step:,}; stopped ({what}; try a lower lr)")
        self.loss, self.step, self.good_step = loss, step, good_step


MAX_TABLE_VOCAB = 8192  # the counting and bigram models hold V×V tables: 256 MiB each at this size


def new_model(
    cfg: TrainConfig,
    data: Dataset,
    parallel: DataParallel | None = None,
    progress: Callable[[str], None] | None = None,
) -> Fitted:
    """A model for the data: vocabulary, block size, and its initial parameters, or its counts.

    A counted model (counts, n-grams) is complete here. With parallel (a
    parallel.DataParallel) it counts over its devices; where data is one
    process's part of a multi-host run, the counts of every process are added.
    progress hears a short line now and then about a long count.
    """
    model_def = get_model(cfg.type)
    block_size = block_size_for(cfg, data, model_def)
    V = data.vocab.size
    if model_def.table is not None and V > MAX_TABLE_VOCAB:
        raise MakemoreError(
            f"a vocabulary of {V:,} characters needs {V:,}×{V:,} tables ({V * V * 4 / 2**30:.1f} GiB each); "
            f"the {cfg.type} model takes at most {MAX_TABLE_VOCAB:,} (the other models have no such table)"
        )
    if model_def.count is not None:  # counted (mypy narrows the field, not the property)
        counter = Counter(parallel, data.local_only, progress)
        return Fitted(cfg, data.vocab, model_def.count(data, cfg, counter), block_size)
    model = Fitted(cfg, data.vocab, {}, block_size)
    check_config(model.model_config, cfg.type)
    if cfg.dropout and "dropout" not in model_def.settings:
        raise MakemoreError(f"dropout: the {cfg.type} model has no dropout")
    assert model_def.init is not None  # trained: a counted model has no init (returned above)
    params = model_def.init(seed_key(cfg.seed, "init"), model.model_config)
    model.params = params if cfg.init_scale == 1.0 else jax.tree.map(lambda p: cfg.init_scale * p, params)
    return model


class Counter:
    """How a counted model counts its training split: here, or over a DataParallel's devices.

    process_local: each process holds its own part of the input (a multi-host
    run); the counts of every process are added. progress: a callable that
    takes a short line about a long count (the CLI draws it on a terminal).
    """

    def __init__(
        self,
        parallel: DataParallel | None = None,
        process_local: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.parallel, self.process_local, self.progress = parallel, process_local, progress

    def pairs(self, xs: np.ndarray, ys: np.ndarray, vocab_size: int) -> jax.Array:
        """int32 V×V: how often id j follows id i."""
        counts = count_matrix_over_devices(xs, ys, vocab_size, self.parallel, self.process_local)
        return counts if self.parallel is None else self.parallel.readable(counts)

    def ngram_rows(self, ngrams_PxN: np.ndarray, vocab_size: int) -> NgramCounts:
        """The n-gram rows' counts (ngram.NgramCounts)."""
        return count_ngram_rows_over_devices(ngrams_PxN, vocab_size, self.parallel, self.process_local)

    def ngram_words(self, words: Sequence[str], vocab: Vocabulary, order: int, memory: int) -> NgramCounts:
        """The counts (ngram.NgramCounts) of the words' n-grams, counted within memory bytes (spilling past them)."""
        from .parallel import count_ngram_words

        return count_ngram_words(words, vocab, order, memory, self.parallel, self.process_local, progress=self.progress)


def _loss_and_data(model: Fitted, data: Dataset, parallel: DataParallel | None = None) -> tuple[LossFn, BatchData]:
    cfg = model.config
    loss_counts = full_batch_counts_loss(model)
    if loss_counts is not None:
        xs, ys = data.pairs("train")
        return full_batch_loss(loss_counts, cfg.l2), {
            "counts": count_matrix_over_devices(xs, ys, data.vocab.size, parallel, data.local_only)
        }
    keys: BatchData = {"key": seed_key(cfg.seed, "batches"), "dropout_key": seed_key(cfg.seed, "dropout")}
    if parallel is None:
        host_tokens, host_lengths = data.padded("train", model.block_size)
        batch = {"tokens": jnp.asarray(host_tokens), "lengths": jnp.asarray(host_lengths), **keys}
        model_def = model.model_def
        capacity = packing_capacity(cfg, model_def, host_lengths, model.block_size)
        loss = sequence_loss(
            model.apply,
            cfg.l2,
            cfg.batch_size,
            cfg.dropout,
            apply_packed=model_def.apply_packed,
            capacity=capacity,
        )
        return loss, batch
    parallel.check_batch(cfg.batch_size)
    if isinstance(data, SlicedDataset):  # each process holds the rows it parsed; row_of says where each one is
        tokens, lengths = parallel.hold_rows(data, model.block_size)
        keys["row_of"] = data.row_of
    else:
        tokens, lengths = parallel.shard_rows(data.words["train"], data.vocab, model.block_size)
    loss = sequence_loss(
        model.apply,
        cfg.l2,
        cfg.batch_size,
        cfg.dropout,
        num_words=data.sizes["train"],
        place_batch=parallel.place_batch,
    )
    return loss, {"tokens": tokens, "lengths": lengths, **keys}


def full_batch_counts_loss(model: Fitted) -> Callable[[Params, jax.Array, float], jax.Array] | None:
    """The model's loss from the split's bigram counts where it trains on the whole split (batch size 0) and
    has such a loss; None otherwise."""
    return model.model_def.loss_counts if model.config.batch_size == 0 else None


def _next_stop(step: int, cfg: TrainConfig) -> int:
    def next_multiple(every):
        return (step // every + 1) * every

    return min(next_multiple(cfg.log_every), next_multiple(cfg.eval_every), cfg.steps)


def fit(
    model: Fitted,
    data: Dataset,
    state: TrainState | None = None,
    on_record: Callable[[Record], None] | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    stop_requested: Callable[[], bool] | None = None,
    parallel: DataParallel | None = None,
) -> TrainState:
    """Train model.params in place of state (fresh if None) up to cfg.steps.

    After each chunk a record (step, loss, steps/s, and at evaluation steps the
    NLL of every split) goes to on_record; at each evaluation on_checkpoint(model, state,
    is_best_by_dev) is called. Non-finite loss stops the run with the step
    named, after handing the last good state to on_checkpoint. Ctrl-C, or
    stop_requested() turning true after a chunk (a signal deferred by the
    caller), hands the last finished state to on_checkpoint and raises
    Interrupted. With parallel (a parallel.DataParallel over several
    devices) the steps run data-parallel over its mesh, on the very batches a
    one-device run draws.
    """
    cfg = model.config
    optimizer = make_optimizer(cfg)
    if state is None:
        state = TrainState(model.params, optimizer.init(model.params))
    loss_fn, batch_data = _loss_and_data(model, data, parallel)
    if parallel is not None:
        state.params, state.opt_state = parallel.place_state(state.params, state.opt_state)
        batch_data = parallel.place_inputs(batch_data)
    unroll = full_batch_unroll() if full_batch_counts_loss(model) is not None else 1
    compiled = _Chunks(loss_fn, optimizer, batch_data, unroll, parallel)
    scored = evaluation_words(data, cfg)
    try:
        while state.step < cfg.steps:
            record, view, is_eval, is_best = _one_chunk(model, scored, state, compiled, on_checkpoint)
            state.history.append(record)
            if on_record:
                on_record(record)
            if is_eval and on_checkpoint:
                view.best_dev = state.best_dev
                on_checkpoint(model, view, is_best)
            if stop_requested is not None and stop_requested():
                raise KeyboardInterrupt  # saved below, at this step
    except KeyboardInterrupt:
        view = compiled.readable(state)
        model.params = view.params
        if on_checkpoint:
            on_checkpoint(model, view, False)
        raise Interrupted(state.step) from None
    return state


def evaluation_words(data: Dataset, cfg: TrainConfig) -> Dataset:
    """What the evaluations during training score: each split cut to cfg.eval_words words, the same
    words every time (drawn once with the seed), so the curve stays comparable and its cost bounded.

    Whole splits with eval_words = 0, and where each process holds a part of the data (multi-host).
    The figures reported at the end of a run are of the whole splits.
    """
    if data.local_only:
        return data
    return data.sample(cfg.eval_words, seed_key(cfg.seed, "eval"))


class _Chunks:
    """The compiled chunks of steps of one run, by length (compiled once each; the time reported apart)."""

    def __init__(
        self,
        loss_fn: LossFn,
        optimizer: optax.GradientTransformation,
        batch_data: BatchData,
        unroll: int,
        parallel: DataParallel | None = None,
    ) -> None:
        self.loss_fn, self.optimizer, self.batch_data, self.unroll, self.parallel = (
            loss_fn,
            optimizer,
            batch_data,
            unroll,
            parallel,
        )
        self.executables: dict[int, jax.stages.Compiled] = {}

    def run(self, state: TrainState, todo: int, record: Record) -> tuple[Params, OptState, jax.Array]:
        """(params, opt_state, losses) after todo steps from state; record gets compile_s on a first compile."""
        if todo not in self.executables:
            t0 = time.perf_counter()
            args = (self.loss_fn, self.optimizer, state.params, state.opt_state, self.batch_data)
            if self.parallel is None:
                self.executables[todo] = run_steps.lower(*args, state.step, todo, self.unroll).compile()
            else:
                self.executables[todo] = self.parallel.compile_steps(*args, todo, self.unroll)
            record["compile_s"] = time.perf_counter() - t0
        return self.executables[todo](state.params, state.opt_state, self.batch_data, state.step)

    def readable(self, st: TrainState) -> TrainState:
        """What evaluation and checkpoints read: st itself on one device, gathered copies over several."""
        if self.parallel is None:
            return st
        return replace(st, params=self.parallel.readable(st.params), opt_state=self.parallel.readable(st.opt_state))


def _one_chunk(
    model: Fitted, data: Dataset, state: TrainState, chunks: _Chunks, on_checkpoint: OnCheckpoint | None
) -> tuple[Record, TrainState, bool, bool]:
    """Run the steps up to the next log or evaluation stop: (record, readable state, is_eval, is_best)."""
    cfg = model.config
    todo = _next_stop(state.step, cfg) - state.step
    record: Record = {"step": state.step + todo}
    t0 = time.perf_counter()
    params, opt_state, chunk_losses = chunks.run(state, todo, record)
    losses = np.asarray(chunk_losses)
    elapsed = time.perf_counter() - t0 - record.get("compile_s", 0.0)
    if not np.isfinite(losses).all():
        bad = state.step + 1 + int(np.argmin(np.isfinite(losses)))
        if on_checkpoint:
            on_checkpoint(model, chunks.readable(state), False)  # model.params are state.params, all finite
        raise LossNotFinite(float(losses[bad - state.step - 1]), bad, state.step)
    state.params, state.opt_state, state.step = params, opt_state, state.step + todo
    view = chunks.readable(state)
    model.params = view.params
    record.update(loss=float(losses.mean()), steps_per_s=todo / max(elapsed, 1e-9))
    is_eval = state.step % cfg.eval_every == 0 or state.step == cfg.steps
    is_best = False
    if is_eval:
        nll = split_nll(model, data)  # each split (or its fixed sample), one compiled call each
        record.update(with_perplexities({f"{s}_nll": v for s, v in nll.items() if v is not None}))
        dev = nll["dev"]
        is_best = dev is None or state.best_dev is None or dev < state.best_dev
        if is_best:
            state.best_dev = dev
    return record, view, is_eval, is_best
