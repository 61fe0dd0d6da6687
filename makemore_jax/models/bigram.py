"""Neural bigram: one V×V weight matrix W, logits for the next id = W[previous id].

The lecture's network: one_hot(x) @ W gives the logits, softmax gives p(y | x).
A one-hot row times W *is* a row of W, so indexing W[x] is the same function
without the V-wide multiply, and the full-batch loss only depends on the data
through the bigram count matrix N (its sufficient statistic). All three forms
are kept here and tested to agree on loss and gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import Decoder, FittedView, ModelConfig, ModelDef, Runner, Settings
from .losses import l2_penalty, nll_from_counts, nll_from_logits


@dataclass(frozen=True)
class BigramConfig:
    """The bigram needs only V; any config with ``vocab_size`` (e.g. ModelConfig) works."""

    vocab_size: int


def init(key: jax.Array, config: BigramConfig | ModelConfig) -> dict:
    """W ~ N(0, 1), V×V, as in the lecture."""
    return {"W": jax.random.normal(key, (config.vocab_size, config.vocab_size), jnp.float32)}


def apply(params: dict, idx: jax.Array) -> jax.Array:
    """Logits for the next id given the current one: idx (...) -> logits (..., V)."""
    return params["W"][idx]


def loss_onehot(params: dict, xs_N: jax.Array, ys_N: jax.Array, l2: float) -> jax.Array:
    """The lecture's form: one_hot(xs) @ W, softmax, NLL, plus l2·mean(W²)."""
    W = params["W"]
    x_NxV = jax.nn.one_hot(xs_N, W.shape[0], dtype=W.dtype)
    return nll_from_logits(x_NxV @ W, ys_N) + l2 * l2_penalty(W)


def loss_gather(params: dict, xs_N: jax.Array, ys_N: jax.Array, l2: float) -> jax.Array:
    """Fast path: softmax is row-wise, so normalise the V rows of W once and gather.

    -mean log_softmax(W)[xs, ys] equals the NLL of the rows W[xs]; the gradient is
    a scatter-add into W instead of an N×V matmul.
    """
    W = params["W"]
    logp_VxV = jax.nn.log_softmax(W, axis=-1)
    return -jnp.mean(logp_VxV[xs_N, ys_N]) + l2 * l2_penalty(W)


def loss_counts(params: dict, counts_VxV: jax.Array, l2: float) -> jax.Array:
    """Full-batch loss from the count matrix: -Σ N ⊙ log_softmax(W) / ΣN + l2·mean(W²).

    V×V work per step, independent of how many pairs N summarises.
    """
    W = params["W"]
    return nll_from_counts(jax.nn.log_softmax(W, axis=-1), counts_VxV) + l2 * l2_penalty(W)


def probs(params: dict) -> jax.Array:
    """The V×V table p(next | previous) the network represents."""
    return jax.nn.softmax(params["W"], axis=-1)


def decode_init(params: dict, config: ModelConfig | None, batch: int) -> tuple[()]:
    return ()  # the next id depends on the current one only: no state


def decode_step(params: dict, state: tuple[()], token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, tuple[()]]:
    return params["W"][token_B], state


def table(params: dict, settings: Settings | None = None) -> jax.Array:
    """The V×V next-id logits: W itself."""
    return params["W"]


DECODER = Decoder(decode_init, decode_step, table)  # params {"W": logits_VxV}; the sampler inverts W's rows


def table_runner(logits_VxV: jax.Array, block_size: int) -> Runner:
    """Any table of next-id logits (a counting model's log P too) run as the bigram whose W it is.

    It scores words of any length and samples names up to twice the longest
    training word (block_size − 1) by default: a table is tied to no block.
    """
    return Runner({"W": logits_VxV}, apply, DECODER, None, block_size, any_length=True, sample_len=2 * (block_size - 1))


def run(model: FittedView) -> Runner:
    return table_runner(model.params["W"], model.block_size)


MODELS = {
    "bigram": ModelDef(
        "bigram",
        init,
        apply,
        decode_init,
        decode_step,
        table=table,
        run=run,
        loss_counts=loss_counts,
        defaults=(),
        settings=("init_scale",),
    )
}
