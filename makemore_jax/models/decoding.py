"""How a model is driven one position at a time: the ``Decoder`` the sampler and mixtures use.

``init(params, config, n) -> state`` and ``step(params, state, token_N, t) ->
(logits_NxV, state)``. Models with a carried state or a key/value cache supply
their own (``ModelDef.decode_init`` / ``decode_step``); for the others
``recompute_decoder`` re-runs ``apply`` over the whole buffer at every step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import Params, State, bigram


class Decoder(NamedTuple):
    init: Callable[[Params, Any, int], State]  # (params, the model's config: any its init reads, batch)
    step: Callable[[Params, State, jax.Array, jax.Array], tuple[jax.Array, State]]
    # For models whose next id depends on the current id alone: params -> logits_VxV.
    # The sampler then inverts each row of the table once, instead of every name's logits at every step.
    table: Callable[[Params], jax.Array] | None = None


TABLE_DECODER = Decoder(bigram.decode_init, bigram.decode_step, lambda params: params["W"])  # params {"W": logits_VxV}


@cache
def recompute_decoder(apply: Callable) -> Decoder:
    """The plain path: keep the ids so far, run apply on all of them, read position t."""

    def init(params, config, n):
        return jnp.zeros((n, config.block_size), jnp.int32)

    def step(params, buf_NxT, token_N, t):
        buf_NxT = buf_NxT.at[:, t].set(token_N)
        return jnp.take(apply(params, buf_NxT), t, axis=1), buf_NxT

    return Decoder(init, step)
