"""makemore-jax: character-level language models in JAX, after Karpathy's makemore.

``makemore_jax.train(input, workdir=..., **settings)`` (as `makemore train`),
``tune`` and ``mix`` (as `makemore tune` and `mix`) and ``load(workdir)`` give
a ``Model`` to sample from, score words with and save (see ``makemore_jax.api``).
They are loaded on first use, so that importing the package does not load JAX.
"""

from ._version import __version__ as __version__

_API = ("Interrupted", "Model", "NotEnough", "import_model", "load", "mix", "perplexity", "train", "tune")


def __getattr__(name: str) -> object:
    if name in _API:
        from . import api  # the lazy start: JAX loads here, not at import

        return getattr(api, name)
    raise AttributeError(f"module 'makemore_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
