"""makemore-jax: character-level language models in JAX, after Karpathy's makemore.

``makemore_jax.load(workdir)`` and ``makemore_jax.train(words, **settings)``
give a ``Model`` to sample from, score words with and save (see
``makemore_jax.api``). They are loaded on first use, so that importing the
package (and starting the ``makemore`` command) does not load JAX.
"""

from ._version import __version__ as __version__

_API = ("Model", "NotEnough", "load", "train", "perplexity")


def __getattr__(name: str) -> object:
    if name in _API:
        from . import api  # the lazy start: JAX loads here, not at import

        return getattr(api, name)
    raise AttributeError(f"module 'makemore_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
