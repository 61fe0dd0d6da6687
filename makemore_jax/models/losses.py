"""Negative log-likelihood in its three equivalent forms, and the L2 penalty."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeVar, overload

import jax
import jax.numpy as jnp

from ..errors import MakemoreError
from . import Params


def _require_pairs(xs: jax.Array) -> None:
    if xs.shape[0] == 0:
        raise MakemoreError("mean NLL of an empty set of pairs is undefined")


@jax.jit
def _mean_nll(probs_VxV, xs_N, ys_N):
    return -jnp.mean(jnp.log(probs_VxV[xs_N, ys_N]))


def mean_nll(probs_VxV: jax.Array, xs_N: jax.Array, ys_N: jax.Array) -> jax.Array:
    """-mean_i log P[x_i, y_i] under a probability table.

    A pair of probability 0 makes the result +inf (never NaN). An empty set of
    pairs is an error.
    """
    _require_pairs(xs_N)
    return _mean_nll(probs_VxV, xs_N, ys_N)


@jax.jit
def nll_from_logits(logits_NxV: jax.Array, ys_N: jax.Array) -> jax.Array:
    """Mean cross-entropy of rows of logits against target ids."""
    logp_NxV = jax.nn.log_softmax(logits_NxV, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp_NxV, ys_N[:, None], axis=-1))


@jax.jit
def nll_from_counts(logprobs_VxV: jax.Array, counts_VxV: jax.Array) -> jax.Array:
    """Mean NLL of the pairs summarised by a count matrix: -Σ N ⊙ log P / ΣN.

    Costs V×V work whatever the number of pairs. Cells with N = 0 contribute 0
    even where log P = -inf; a pair seen with P = 0 gives +inf.
    """
    counts = counts_VxV.astype(jnp.float32)
    weighted = jnp.where(counts_VxV > 0, counts * logprobs_VxV, 0.0)
    # each row's share of the mean, then their sum: a sum of V terms of the mean's size, not one
    # running sum of V² terms up to Σ N·log P (on names.txt that was 1.3e-6 from the float64 mean
    # with XLA's default code, 2.2e-6 with unoptimised code; this is 1.6e-7 with either)
    return -(weighted.sum(axis=1) / counts.sum()).sum()


def l2_penalty(params: Params) -> jax.Array:
    """mean(p²) over every parameter (an array, or a pytree of them): λ times this is the L2 penalty.

    For the bigram's W it pulls logits toward 0, i.e. rows toward uniform.
    """
    leaves = jax.tree_util.tree_leaves(params)
    return sum(jnp.sum(jnp.square(p)) for p in leaves) / sum(p.size for p in leaves)


@overload
def perplexity(nll: float) -> float: ...
@overload
def perplexity(nll: None) -> None: ...
@overload
def perplexity(nll: float | None) -> float | None: ...


def perplexity(nll: float | None) -> float | None:
    """exp(mean NLL per character): how many equally likely characters the model hesitates between.

    None stays None (an empty split); an NLL past float range is inf.
    """
    if nll is None:
        return None
    return math.inf if nll > 700 else math.exp(nll)


Nll = TypeVar("Nll", float, float | None)  # NLLs, or NLLs where None stands for an empty split


def with_perplexities(nlls: Mapping[str, Nll]) -> dict[str, Nll]:
    """{'<split>_nll': x, ...} with '<split>_ppl': exp(x) beside each."""
    out: dict[str, Nll] = dict(nlls)
    for key, value in nlls.items():
        if key.endswith("_nll"):
            out[key[: -len("_nll")] + "_ppl"] = perplexity(value)
    return out
