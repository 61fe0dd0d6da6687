"""What a run will hold, checked before any work: n-gram orders against the counting budget and the
machine, and a training step's memory against the device's.

``TrainConfig.validate`` bounds what the settings alone decide (an order up to
``ngram.MAX_ORDER``, integer sizes within int32). What depends on the data as
well (its vocabulary, its longest word, the size of its training split) is
``check_fits``'s, called once the words are read and before anything is
counted, initialised or written: by a run (runs.training.TrainingRun, which
both `makemore train` and ``makemore_jax.train`` start) before it takes its work
directory.

Every figure is a product of Python integers (they do not overflow) and never
``V**order``. A training step's estimate is a lower bound of what it holds
(parameters, optimizer state, the padded training rows, the logits of a batch
and, for the Transformer, its attention weights and layer outputs): a request
is refused only when even that passes the memory there is. An n-gram model's
tables are bounded from above (at most one n-gram per position at each order,
which a list of distinct words nears past its longest word), the only figure
known before counting: at order 64 about 9 KB per training position, 1.5 GiB
for names.txt's split, whose order-64 run peaked at 1.2 GB in all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ..data.words import Dataset, split_sizes, word_lengths
from ..errors import MakemoreError
from ..models import ModelConfig, ModelDef, get_model, ngram
from .config import TrainConfig
from .parallel import DataParallel

FLOAT_BYTES = 4
OPTIMIZER_COPIES = {
    "sgd": 3,
    "adamw": 5,
}  # copies of the parameters a step holds: params, grads, updates (+ Adam's m, v)


def block_size_for(cfg: TrainConfig, data: Dataset, model_def: ModelDef) -> int:
    """The run's block size: cfg.block_size, or 0 = the longest word + 1; MakemoreError if a model that needs
    every word to fit (all but the any-length ones) gets less."""
    block_size = cfg.block_size or data.max_word_len + 1
    if model_def.any_length:  # scores words of any length: the block size only bounds sampling
        if block_size < 2:
            raise MakemoreError(f"block size must be at least 2, got {block_size}")
    elif block_size < data.max_word_len + 1:
        raise MakemoreError(
            f"block size {block_size} is too small: the longest word has {data.max_word_len} characters, "
            f"so it must be at least {data.max_word_len + 1}"
        )
    return block_size


def available_memory(parallel: DataParallel | None = None) -> tuple[int | None, str]:
    """(bytes, where) a training step can use: the device's memory where JAX reports it (a GPU: its
    bytes_limit, times the devices of a data-parallel run), else the machine's physical memory; None if unknown."""
    devices = (
        list(parallel.mesh.devices.flat) if parallel is not None else [jnp.zeros(()).devices().pop()]
    )  # the default device
    limits: list[int] = []  # 0 where unknown
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # noqa: BLE001 - a backend without memory statistics (CPU) says so in several ways
            stats = None
        limits.append((stats or {}).get("bytes_limit") or 0)
    if all(limits):
        platform = devices[0].platform
        where = f"the {platform} device" if len(devices) == 1 else f"the {len(devices)} {platform} devices"
        return min(limits) * len(devices), where
    return ngram.physical_memory(), "this machine's memory"


def check_fits(cfg: TrainConfig, data: Dataset, parallel: DataParallel | None = None) -> None:
    """MakemoreError, one line, for a run of cfg on data that cannot fit; returns quickly (no counting, no compiling).

    n-gram: the order against the counting budget (--memory, where its keys
    overflow int64) and its count tables against physical memory. Neural
    models: the block size against the longest word, then parameters, optimizer
    state, the training rows and one step's activations against the memory
    of the device(s) (available_memory).
    """
    model_def = get_model(cfg.type)
    if "order" in model_def.settings:  # a model counted at an order (the n-gram)
        check_ngram_order(cfg.order, data, ngram.memory_bytes(cfg.memory))
    if model_def.counted:
        return
    block_size = block_size_for(cfg, data, model_def)
    parts = step_bytes(cfg, data, block_size, model_def)
    need = sum(parts.values())
    memory, where = available_memory(parallel)
    if memory is None or need <= memory:
        return
    rows = cfg.batch_size or data.sizes["train"]
    batch = (
        f"a batch of {rows:,} words" if cfg.batch_size else f"the whole training split ({rows:,} words) as the batch"
    )
    fixed = parts["parameters"] + parts["training rows"]
    hint = "give a smaller --batch-size, --block-size or model"
    fitting_batch = (memory - fixed) // max(parts["activations"] // rows, 1) if fixed < memory else 0
    if cfg.batch_size and fitting_batch >= 1:  # the batch is what does not fit: say how large one does
        words = "word" if fitting_batch == 1 else "words"
        hint = f"at most a batch of about {fitting_batch:,} {words} fits (or give a smaller --block-size or model)"
    detail = ", ".join(f"{k} {_size(v)}" for k, v in parts.items() if v)
    raise MakemoreError(
        f"{cfg.type} training with {batch} at block size {block_size:,} needs at least {_size(need)} ({detail}), "
        f"more than the {_size(memory)} of {where}: {hint}"
    )


def check_ngram_order(order: int, data: Dataset, memory: int) -> None:
    """MakemoreError unless an order-`order` model of the training split can be counted within memory bytes
    (where counting cannot spill) and its tables held in physical memory. From the split's size only."""
    positions = _positions(data.words["train"])
    V = data.vocab.size
    ngram.check_in_memory_count(positions, V, order, memory)
    need, total = ngram.table_bytes(positions, V, order), ngram.physical_memory()
    if total is not None and need > total:
        fits = ngram.largest_order_within(positions, V, total, order)
        raise MakemoreError(
            f"order {order:,} is too large to count: the tables of orders 1..{order:,} of {positions:,} training "
            f"positions can take up to {_size(need)}, more than this machine's {_size(total)} of memory; at most order "
            f"{max(fits, 1):,} fits"
        )


def step_bytes(cfg: TrainConfig, data: Dataset, block_size: int, model_def: ModelDef) -> dict[str, int]:
    """Lower bounds of what one training step holds, in bytes: parameters with their gradients and optimizer
    state, the training rows padded to block_size, and the activations of a batch (its logits and their
    gradient; the Transformer's attention weights)."""
    V, n_train = data.vocab.size, data.sizes["train"]
    params = parameter_count(cfg, V, block_size, model_def)
    parts = {"parameters": params * FLOAT_BYTES * OPTIMIZER_COPIES.get(cfg.optimizer, 3)}
    if cfg.batch_size == 0 and model_def.loss_counts is not None:  # the full-batch bigram: V×V counts, no rows
        return {**parts, "training rows": 0, "activations": 3 * V * V * FLOAT_BYTES}
    parts["training rows"] = n_train * (block_size + 1) * FLOAT_BYTES  # int32 ids, every word padded
    rows = cfg.batch_size or n_train
    per_row = block_size  # positions of a padded row
    if cfg.pack and model_def.apply_packed is not None and n_train:  # packed: about the words' own positions
        per_row = max(-(-_positions(data.words["train"]) // n_train), 1)
    positions = max(rows * per_row, block_size if rows else 0)
    per_position = 2 * V  # the logits and their gradient
    if model_def.apply_packed is not None:  # the Transformer, each layer: attention weights and their gradient,
        # and its normed input, q, k, v, attention output and the MLP's hidden layer (at least 8 × n_embd)
        per_position += cfg.n_layer * (2 * cfg.n_head * block_size + 8 * cfg.n_embd)
    elif model_def.loss_counts is None:  # the other neural models: at least an embedding and a hidden layer
        per_position += cfg.n_embd + cfg.n_embd2
    parts["activations"] = positions * per_position * FLOAT_BYTES
    return parts


def parameter_count(cfg: TrainConfig, vocab_size: int, block_size: int, model_def: ModelDef) -> int:
    """How many parameters the model has, from the shapes of its init (jax.eval_shape: nothing is allocated).

    A model's size is linear in its layers, so at most two are traced and the
    rest extrapolated: a deep Transformer's Python loop over layers stays short.
    """

    init = model_def.init
    assert init is not None  # trained: a counted model's size is its tables'

    def count(n_layer: int) -> int:
        config = ModelConfig(vocab_size, block_size, n_layer, cfg.n_head, cfg.n_embd, cfg.n_embd2)
        model_def.check(config)
        try:
            shapes = jax.eval_shape(lambda key: init(key, config), jax.random.key(0))
        except (OverflowError, ValueError, TypeError) as err:  # a shape past what XLA can describe
            raise MakemoreError(f"{cfg.type}: a model of these sizes cannot be built ({err})") from None
        return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes))

    if cfg.n_layer <= 2:
        return count(cfg.n_layer)
    one, two = count(1), count(2)
    return two + (cfg.n_layer - 2) * (two - one)


def check_tunable(cfg: TrainConfig, data: Dataset, max_order: int) -> None:
    """MakemoreError, one line, unless ``makemore tune`` can score orders 1..max_order of data: a dev split to
    score on (a split that leaves it no word says how many words would), and the order that can be counted."""
    if data.sizes["dev"] == 0:
        share = cfg.split[1] / sum(cfg.split)
        if share == 0:
            raise MakemoreError("tuning needs a dev split: give it a share with --split (e.g. 80,10,10)")
        n = len(data.words["train"]) + len(data.words["test"])
        least = _least_words_for_dev(n, cfg.split)
        some = f"at least {least:,} words" if least is not None else "more words"
        split = ",".join(f"{x:g}" for x in cfg.split)
        raise MakemoreError(
            f"tuning needs a dev split, and {n:,} word{'s' if n != 1 else ''} {'are' if n != 1 else 'is'} too few "
            f"for one: the split {split} gives dev {share:.0%} of the words, rounded down to 0; give {some}"
        )
    check_ngram_order(max_order, data, ngram.memory_bytes(cfg.memory))
    dev_positions = _positions(data.words["dev"])
    if dev_positions * max_order > ngram.MAX_NGRAM_CELLS:  # the dev n-grams are scored as rows, at once
        raise MakemoreError(
            f"order {max_order:,} is too large to tune: the dev split's {dev_positions:,} positions at order "
            f"{max_order:,} would take {dev_positions * max_order * 4 / 2**30:,.2f} GiB of n-gram rows, more than "
            f"the {ngram.MAX_NGRAM_CELLS * 4 // 2**20} MiB scored at once; at most --max-order "
            f"{max(ngram.MAX_NGRAM_CELLS // max(dev_positions, 1), 1):,} fits"
        )


def _least_words_for_dev(n: int, split: Sequence[float]) -> int | None:
    """The fewest words (at least n + 1) whose split gives dev at least one word, or None if too many to say."""
    share = split[1] / sum(split)
    guess = 1 / share
    if not math.isfinite(guess) or guess > 2**53:
        return None
    for words in range(max(n + 1, math.floor(guess) - 1), math.ceil(guess) + 3):
        if split_sizes(words, split)[1] >= 1:
            return words
    return None


def _positions(words: Sequence[str]) -> int:
    """Σ (len + 1): the predicted positions (each character and each end) of a list of words."""
    return int(word_lengths(words).sum()) + len(words) if len(words) else 0


def _size(n: int) -> str:
    """Bytes as a short figure: '512 MiB', '7.1 TiB'."""
    for unit, scale in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"
