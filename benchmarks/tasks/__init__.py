"""The benchmark tasks; importing this package registers them, in this order."""

# The order of the imports is the order the tasks are registered and run in: not sorted.
# isort: off
from . import bigram_counts  # noqa: F401  (each import registers its task)
from . import bigram_training  # noqa: F401
from . import bigram_sampling  # noqa: F401
from . import model_training  # noqa: F401
from . import names_training  # noqa: F401
from . import transformer_sampling  # noqa: F401
from . import time_to_quality  # noqa: F401
from . import ngram_build  # noqa: F401
from . import sharded_training  # noqa: F401
from . import scaling  # noqa: F401
# isort: on
