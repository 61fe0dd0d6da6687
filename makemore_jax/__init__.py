"""makemore-jax: character-level language models in JAX, after Karpathy's makemore."""

__version__ = "0.1.0"
