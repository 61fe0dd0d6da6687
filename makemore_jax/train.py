"""Training: optax SGD on the neural bigram, many steps per compiled call.

``run_steps`` is the whole inner loop: a ``lax.scan`` of value_and_grad plus an
optimizer update, jitted once per (loss, optimizer, chunk length). Python only
runs between chunks, to log progress.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import counts as counts_lib
from .data import Vocabulary, bigram_pairs, split_words, validate_split
from .errors import MakemoreError
from .losses import nll_from_counts
from .models import bigram
from .seeding import MAX_SEED, seed_key

MODEL_TYPES = ("counts", "bigram")
SPLITS = ("train", "dev", "test")


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "num_steps"))
def run_steps(loss_fn, optimizer, params, opt_state, batch_data, first_step, num_steps: int):
    """num_steps optimizer steps in one scan; loss_fn(params, batch_data, step) -> scalar.

    Returns (params, opt_state, losses of each step).
    """

    def one_step(carry, step):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, batch_data, step)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    steps = first_step + jnp.arange(num_steps, dtype=jnp.int32)
    (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), steps)
    return params, opt_state, losses


def full_batch_loss(l2: float):
    """Loss over all training pairs, through their count matrix (V×V work per step)."""

    def loss_fn(params, batch_data, step):
        return bigram.loss_counts(params, batch_data["counts"], l2)

    return loss_fn


def minibatch_loss(l2: float, batch_size: int):
    """Loss on batch_size pairs drawn with replacement, keyed by (batch key, step)."""

    def loss_fn(params, batch_data, step):
        key = jax.random.fold_in(batch_data["key"], step)
        idx = jax.random.randint(key, (batch_size,), 0, batch_data["xs"].shape[0])
        return bigram.loss_gather(params, batch_data["xs"][idx], batch_data["ys"][idx], l2)

    return loss_fn


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Defaults train in seconds on a CPU."""

    type: str = "bigram"
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    smoothing: float = 1.0  # add-k, counting model
    l2: float = 0.01  # λ in loss = NLL + λ·mean(W²), neural bigram
    lr: float = 50.0
    steps: int = 500
    batch_size: int = 0  # 0: full batch (all training pairs, via their counts)

    def validate(self) -> "TrainConfig":
        if self.type not in MODEL_TYPES:
            raise MakemoreError(f"unknown model type {self.type!r} (choose from {', '.join(MODEL_TYPES)})")
        if not (0 <= self.seed <= MAX_SEED):
            raise MakemoreError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        for name in ("smoothing", "l2", "lr"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise MakemoreError(f"{name} must be a finite number >= 0, got {value}")
        if self.steps < 0:
            raise MakemoreError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 0:
            raise MakemoreError(f"batch size must be >= 0 (0 = full batch), got {self.batch_size}")
        validate_split(self.split)
        return self


@dataclass
class Dataset:
    """Words of each split, the vocabulary (from all words) and each split's pairs."""

    vocab: Vocabulary
    words: dict[str, list[str]]
    pairs: dict[str, tuple[jax.Array, jax.Array]]

    @classmethod
    def build(cls, words: list[str], seed: int, split=(0.8, 0.1, 0.1)) -> "Dataset":
        vocab = Vocabulary.from_words(words)
        parts = dict(zip(SPLITS, split_words(words, seed_key(seed, "split"), split)))
        pairs = {name: tuple(map(jnp.asarray, bigram_pairs(ws, vocab))) for name, ws in parts.items() if ws}
        return cls(vocab, parts, pairs)

    def counts(self, split: str) -> jax.Array:
        xs, ys = self.pairs[split]
        return counts_lib.count_matrix(xs, ys, self.vocab.size)


def logits_table(model_type: str, params: dict, hparams: dict) -> jax.Array:
    """The V×V next-id logits of either bigram model (log P for the counting model)."""
    if model_type == "counts":
        return jnp.log(counts_lib.smoothed_probs(params["counts"], hparams["smoothing"]))
    return params["W"]


def split_nll(table_VxV: jax.Array, data: Dataset) -> dict[str, float | None]:
    """Mean NLL of each split's pairs (None for an empty split)."""
    logp = jax.nn.log_softmax(table_VxV, axis=-1)
    return {s: (float(nll_from_counts(logp, data.counts(s))) if s in data.pairs else None) for s in SPLITS}


@dataclass
class TrainResult:
    params: dict
    hparams: dict
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def fit_bigram(
    params: dict,
    data: Dataset,
    cfg: TrainConfig,
    log: Callable[[dict], None] | None = None,
    num_chunks: int = 10,
) -> tuple[dict, list[dict]]:
    """Train W with optax SGD for cfg.steps steps; log a record after each chunk."""
    if cfg.batch_size == 0:
        loss_fn = full_batch_loss(cfg.l2)
        batch_data = {"counts": data.counts("train")}
    else:
        loss_fn = minibatch_loss(cfg.l2, cfg.batch_size)
        xs, ys = data.pairs["train"]
        batch_data = {"xs": xs, "ys": ys, "key": seed_key(cfg.seed, "batches")}
    optimizer = optax.sgd(cfg.lr)
    opt_state = optimizer.init(params)
    chunk = max(1, math.ceil(cfg.steps / num_chunks))
    compiled = {}  # chunk length -> executable; compile time is reported, not mixed into steps/s
    history, done = [], 0
    while done < cfg.steps:
        todo = min(chunk, cfg.steps - done)
        compile_s = 0.0
        if todo not in compiled:
            t0 = time.perf_counter()
            lowered = run_steps.lower(loss_fn, optimizer, params, opt_state, batch_data, done, todo)
            compiled[todo] = lowered.compile()
            compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        params, opt_state, losses = compiled[todo](params, opt_state, batch_data, done)
        loss = float(losses[-1])
        elapsed = time.perf_counter() - t0
        done += todo
        if not math.isfinite(loss):
            raise MakemoreError(f"training diverged at step {done} (loss {loss}); lower --lr")
        record = {"step": done, "loss": loss, "steps_per_s": todo / max(elapsed, 1e-9)}
        if compile_s:
            record["compile_s"] = compile_s
        if "dev" in data.pairs:
            record["dev_nll"] = split_nll(params["W"], data)["dev"]
        history.append(record)
        if log:
            log(record)
    return params, history


def train(words: list[str], cfg: TrainConfig, log: Callable[[dict], None] | None = None) -> tuple[Dataset, TrainResult]:
    """Split the words with cfg.seed, then ``train_on`` them."""
    cfg.validate()
    data = Dataset.build(words, cfg.seed, cfg.split)
    return data, train_on(data, cfg, log)


def train_on(data: Dataset, cfg: TrainConfig, log: Callable[[dict], None] | None = None) -> TrainResult:
    """Build the model of cfg.type, train it, and measure NLL on each split."""
    cfg.validate()
    V = data.vocab.size
    if cfg.type == "counts":
        params = {"counts": data.counts("train")}
        hparams = {"smoothing": cfg.smoothing}
        history = []
    else:
        params = bigram.init(seed_key(cfg.seed, "init"), bigram.BigramConfig(V))
        params, history = fit_bigram(params, data, cfg, log)
        hparams = {"l2": cfg.l2}
    metrics = {f"{s}_nll": v for s, v in split_nll(logits_table(cfg.type, params, hparams), data).items()}
    return TrainResult(params, hparams, history, metrics)
