"""The benchmark tasks; importing this package registers them, in this order."""

from . import (
    bigram_counts,  # noqa: F401  (each import registers its task)
    bigram_sampling,  # noqa: F401
    bigram_training,  # noqa: F401
    model_training,  # noqa: F401
    names_training,  # noqa: F401
    ngram_build,  # noqa: F401
    scaling,  # noqa: F401
    sharded_training,  # noqa: F401
    time_to_quality,  # noqa: F401
    transformer_sampling,  # noqa: F401
)
