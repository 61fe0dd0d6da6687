"""Building blocks shared by the models: plain functions over dicts of arrays.

Initialisation follows PyTorch's defaults, so the models start where the
PyTorch makemore's start: Linear weights and biases U(-1/√fan_in, 1/√fan_in),
Embedding N(0, 1), LayerNorm weight 1 and bias 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def linear_init(key: jax.Array, fan_in: int, fan_out: int, bias: bool = True) -> dict:
    """{'w': (fan_in, fan_out), 'b': (fan_out,)} ~ U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    kw, kb = jax.random.split(key)
    params = {"w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound)}
    if bias:
        params["b"] = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
    return params


def linear(params: dict, x: jax.Array) -> jax.Array:
    y = x @ params["w"]
    return y + params["b"] if "b" in params else y


def embedding_init(key: jax.Array, num: int, dim: int) -> jax.Array:
    return jax.random.normal(key, (num, dim), jnp.float32)


def layer_norm_init(dim: int) -> dict:
    return {"scale": jnp.ones((dim,), jnp.float32), "bias": jnp.zeros((dim,), jnp.float32)}


def layer_norm(params: dict, x: jax.Array, eps: float = 1e-5) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * params["scale"] + params["bias"]


def gelu(x: jax.Array) -> jax.Array:
    """GELU, tanh approximation (as GPT-2 and makemore use)."""
    return jax.nn.gelu(x, approximate=True)
