"""Models as (init, apply) pairs of pure functions over plain pytrees, by name.

Every model is a ``ModelDef``:

- ``init(key, config) -> params``: a pytree (nested dicts) of float32 arrays.
- ``apply(params, idx_BxT) -> logits_BxTxV``: int32 ids in, next-id logits out.
  Position t sees ids 0..t only (causal); idx[:, 0] is the start boundary 0.
  T may be anything from 1 to config.block_size.
- ``decode_init(params, config, batch) -> state`` and
  ``decode_step(params, state, token_B, t) -> (logits_BxV, state)``: optional
  incremental generation. ``token_B`` is the id at position t (the boundary at
  t = 0) and the logits are those of ``apply`` at position t, i.e. for t + 1.
  Recurrent models carry their hidden state, the Transformer a key/value cache.
  Without them the sampler recomputes ``apply`` over the whole buffer.
- ``check(config)``: raises MakemoreError for sizes that do not fit.
- ``apply_dropout(params, idx_BxT, key, rate) -> logits_BxTxV``: optional, the
  training-time forward pass with dropout; ``apply`` is the evaluation one.
- ``apply_packed(params, ids_RxS, positions_RxS, segments_RxS, key=None, rate=0.0)
  -> logits_RxSxV``: optional, the forward pass over words packed end to end
  (see ``makemore_jax.packing``), each word seeing only its own earlier
  positions; with it the trainer skips the padding of its batches.

Model files define ``MODELS = {name: ModelDef, ...}``; they are imported on
first use, so the registry below is the only list of names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import jax

from ..errors import MakemoreError


@dataclass(frozen=True)
class ModelConfig:
    """Sizes shared by the family; defaults are the PyTorch makemore ones.

    block_size is the longest id sequence a model sees: longest word + 1.
    """

    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    n_embd2: int = 64


def _no_check(config: ModelConfig) -> None:
    return None


@dataclass(frozen=True)
class ModelDef:
    name: str
    init: Callable[[jax.Array, ModelConfig], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    decode_init: Callable[[Any, ModelConfig, int], Any] | None = None
    decode_step: Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any]] | None = None
    check: Callable[[ModelConfig], None] = _no_check
    apply_dropout: Callable[[Any, jax.Array, jax.Array, float], jax.Array] | None = None
    apply_packed: Callable[..., jax.Array] | None = None


# name -> module under makemore_jax.models that defines it in MODELS
_MODULE_OF = {
    "bigram": "bigram",
    "mlp": "mlp",
    "rnn": "recurrent",
    "gru": "recurrent",
    "lstm": "recurrent",
    "bow": "bow",
    "transformer": "transformer",
    "wavenet": "wavenet",
}

MODEL_NAMES = tuple(_MODULE_OF)


def get_model(name: str) -> ModelDef:
    """The ModelDef registered under name; MakemoreError for an unknown name."""
    if name not in _MODULE_OF:
        raise MakemoreError(f"unknown model type {name!r} (choose from {', '.join(MODEL_NAMES)})")
    module = importlib.import_module(f"{__name__}.{_MODULE_OF[name]}")
    return module.MODELS[name]


def check_config(config: ModelConfig, name: str) -> None:
    """Shared size checks, then the model's own."""
    for field in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_embd2"):
        value = getattr(config, field)
        if not isinstance(value, int) or value < 1:
            raise MakemoreError(f"{field} must be a positive integer, got {value!r}")
    get_model(name).check(config)


def available() -> list[str]:
    """Names whose module is present in this installation."""
    out = []
    for name, module in _MODULE_OF.items():
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{module}":
                raise
            continue
        out.append(name)
    return out
