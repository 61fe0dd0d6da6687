"""Models as (init, apply) pairs of pure functions over plain pytrees."""

from . import bigram

__all__ = ["bigram"]
