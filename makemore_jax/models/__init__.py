"""Models as (init, apply) pairs of pure functions over plain pytrees, by name.

Every model is a ``ModelDef``. A trained (neural) model supplies:

- ``init(key, config) -> params``: a pytree (nested dicts) of float32 arrays.
- ``apply(params, idx_BxT) -> logits_BxTxV``: int32 ids in, next-id logits out.
  Position t sees ids 0..t only (causal); idx[:, 0] is the start boundary 0.
  T may be anything from 1 to config.block_size.
- ``decode_init(params, config, batch) -> state`` and
  ``decode_step(params, state, token_B, t) -> (logits_BxV, state)``: optional
  incremental generation. ``token_B`` is the id at position t (the boundary at
  t = 0) and the logits are those of ``apply`` at position t, i.e. for t + 1.
  Recurrent models carry their hidden state, the Transformer a key/value cache.
  Without them the sampler recomputes ``apply`` over the whole buffer.
- ``check(config)``: raises MakemoreError for sizes that do not fit.
- A model that lists ``dropout`` in its ``settings`` takes ``key`` and ``rate``
  keywords in ``apply`` (and ``apply_packed``): the training-time forward pass
  with dropout; without them it is the evaluation one.
- ``apply_packed(params, ids_RxS, positions_RxS, segments_RxS, key=None, rate=0.0)
  -> logits_RxSxV``: optional, the forward pass over words packed end to end
  (see ``makemore_jax.data.packing``), each word seeing only its own earlier
  positions; with it the trainer skips the padding of its batches.
- ``apply_trie(params, ids_RxS, depths_RxS, ends_RxS) -> logits_RxSxV``:
  optional, the forward pass over prefix trees laid out depth-first (see
  ``makemore_jax.data.prefixes.trie``), slot s seeing the slots s' <= s with
  s < ends[s'] (its ancestors); with it evaluation computes each distinct
  prefix of a word list once.

A counted model (the counting model, the n-grams) has no init and no apply of
its own: it supplies ``count`` and ``run``.

- ``count(data, settings, counter) -> params``: fitted by counting the
  training split instead of by gradient steps. ``counter.pairs(xs, ys, V)``
  counts bigrams into a V×V table, ``counter.ngram_rows(rows_PxN, V)`` counts
  n-gram rows; the trainer's counter counts here or over several devices.
- ``run(fitted) -> Runner``: how the fitted model runs (``models.runner``):
  the table models run as a bigram whose W is their table, the n-grams
  through their context lookup, with their own scoring.

Every fitted model is run through ``ModelDef.runner(fitted)`` (``run`` where
the model has one, else a Runner of its apply, decoder and apply_trie), and
sampling, mixtures and evaluation use that Runner alone.

A model also answers for itself what the rest of the package would otherwise
ask by its name. ``settings`` below is a training.config.TrainConfig and
``data`` a data.words.Dataset; the models never import them, they are handed in.

- ``table(params, settings) -> logits_VxV``: the models whose next id depends
  on the current one alone (counts, bigram); they are evaluated and sampled
  through the table.
- ``loss_counts(params, counts_VxV, l2) -> loss``: the full-batch loss from the
  training split's bigram counts (batch size 0), V×V work per step.
- ``saved_arrays(arrays, settings, V) -> {'params/...': (shape, dtype)}``: what
  a checkpoint of it must hold, when that is not the shapes of ``init``.
- ``any_length``: it scores and samples words longer than its block size.
- ``fitted_here``: False for a model read whole from another tool's file (the
  backoff model of an ARPA file, ``ngram.backoff``): it was fitted on no split
  of the data, so a mixture does not ask it to share the others' seed and split.
- ``defaults``: its training settings' defaults; ``settings``: the settings
  of its own that it reads (sizes, smoothing, ...: those training.config
  declares with scope MODEL; a type that does not list one refuses it);
  ``resolve(given) -> given``: its rules on the settings a user gave; ``describe(settings) -> str``: how it is named
  on the terminal.

Model files define ``MODELS = {name: ModelDef, ...}``; they are imported on
first use, so the registry below is the only list of names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jax
import numpy as np

from ..errors import MakemoreError
from .runner import Decoder, Params, Runner, State, recompute_decoder

if TYPE_CHECKING:
    from ..data.words import Dataset, Vocabulary
    from .ngram.counting import NgramCounts

ArraySpecs = dict[str, tuple[tuple[int, ...], np.dtype]]  # {'params/...': (shape, dtype)} of a checkpoint


@dataclass(frozen=True)
class ModelConfig:
    """Sizes shared by the family; defaults are the PyTorch makemore ones.

    block_size is the longest id sequence a model sees: longest word + 1.
    """

    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    n_embd2: int = 64


class Settings(Protocol):
    """What a model reads of its training settings: a training.config.TrainConfig, handed in (never imported)."""

    @property
    def seed(self) -> int: ...
    @property
    def split(self) -> tuple[float, float, float]: ...
    @property
    def smoothing(self) -> float: ...
    @property
    def smoothing_method(self) -> str: ...
    @property
    def order(self) -> int: ...
    @property
    def discount(self) -> float: ...
    @property
    def discount_scale(self) -> float: ...
    @property
    def memory(self) -> str: ...


class Counter(Protocol):
    """How a counted model counts its training split (training.trainer.Counter: here or over devices)."""

    def pairs(self, xs: np.ndarray, ys: np.ndarray, vocab_size: int) -> jax.Array: ...
    def ngram_rows(self, ngrams_PxN: np.ndarray, vocab_size: int) -> NgramCounts: ...
    def ngram_words(self, words: Sequence[str], vocab: Vocabulary, order: int, memory: int) -> NgramCounts: ...


class FittedView(Protocol):
    """What the models read of a fitted model (training.fitted.Fitted, handed in: a higher layer)."""

    @property
    def config(self) -> Settings: ...
    @property
    def vocab(self) -> Vocabulary: ...
    @property
    def params(self) -> Params: ...
    @property
    def block_size(self) -> int: ...
    @property
    def model_config(self) -> Any: ...  # what its decoder's init reads: a ModelConfig (a mixture's own)


def _no_check(config: ModelConfig) -> None:
    return None


def _given_as_is(given: dict[str, Any]) -> dict[str, Any]:
    return given


# The PyTorch makemore's training settings, every neural model's defaults but the bigram's
MAKEMORE_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("optimizer", "adamw"),
    ("lr", 5e-4),
    ("weight_decay", 0.01),
    ("l2", 0.0),
    ("steps", 10000),
    ("batch_size", 32),
    ("eval_every", 500),
    ("log_every", 100),
)


@dataclass(frozen=True)
class ModelDef:
    name: str
    init: Callable[[jax.Array, ModelConfig], Params] | None = None  # None: counted, never initialised
    apply: Callable[[Params, jax.Array], jax.Array] | None = None  # None: run through its own run
    decode_init: Callable[[Params, ModelConfig, int], State] | None = None
    decode_step: Callable[[Params, State, jax.Array, jax.Array], tuple[jax.Array, State]] | None = None
    check: Callable[[ModelConfig], None] = _no_check
    apply_packed: Callable[..., jax.Array] | None = None  # (params, ids, positions, segments, key=None, rate=0.0)
    apply_trie: Callable[[Params, jax.Array, jax.Array, jax.Array], jax.Array] | None = None
    count: Callable[[Dataset, Settings, Counter], Params] | None = None
    table: Callable[[Params, Settings], jax.Array] | None = None
    loss_counts: Callable[[Params, jax.Array, float], jax.Array] | None = None
    run: Callable[[FittedView], Runner] | None = None
    saved_arrays: Callable[[dict[str, np.ndarray], Settings, int], ArraySpecs] | None = None
    any_length: bool = False
    defaults: tuple[tuple[str, object], ...] = MAKEMORE_DEFAULTS
    settings: tuple[str, ...] = ()  # the settings of its own it reads (training.config's scope MODEL)
    resolve: Callable[[dict[str, Any]], dict[str, Any]] = _given_as_is  # settings given: field -> value
    describe: Callable[[Settings], str] | None = None
    fitted_here: bool = True  # False: read whole from another tool's file, fitted on no split of ours

    @property
    def counted(self) -> bool:
        """Fitted by counting (no optimizer steps, nothing to resume)."""
        return self.count is not None

    @property
    def trained(self) -> bool:
        """Fitted by gradient steps from its init (a run of it can resume)."""
        return self.init is not None

    def label(self, settings: Settings) -> str:
        return self.describe(settings) if self.describe is not None else self.name

    def runner(self, fitted: FittedView) -> Runner:
        """How a fitted model of this type runs: its own ``run``, or its apply, decoder and apply_trie."""
        if self.run is not None:
            return self.run(fitted)
        if self.apply is None:
            raise MakemoreError(f"{a_model(self.name)} has neither apply nor run")
        if self.decode_init is not None and self.decode_step is not None:
            decoder = Decoder(self.decode_init, self.decode_step)
        else:
            decoder = recompute_decoder(self.apply)
        return Runner(
            fitted.params,
            self.apply,
            decoder,
            fitted.model_config,
            fitted.block_size,
            any_length=self.any_length,
            apply_trie=self.apply_trie,
        )


# name -> module under makemore_jax.models that defines it in MODELS: first the
# counted models, then the neural ones, then those only read from other tools' files
_COUNTED = {"counts": "counts", "ngram": "ngram"}
_MODULE_OF = {
    "bigram": "bigram",
    "mlp": "mlp",
    "rnn": "recurrent",
    "gru": "recurrent",
    "lstm": "recurrent",
    "bow": "bow",
    "transformer": "transformer",
    "wavenet": "wavenet",
}

_READ = {"backoff": "ngram"}  # an ARPA file's backoff model (makemore import --format arpa)

MODEL_NAMES = tuple(_MODULE_OF)  # the neural models, trained by gradient steps
TRAINING_TYPES = tuple(_COUNTED) + MODEL_NAMES  # the types train makes
MODEL_TYPES = TRAINING_TYPES + tuple(_READ)  # every type a work directory can hold


def get_model(name: str) -> ModelDef:
    """The ModelDef registered under name; MakemoreError for an unknown name."""
    module = _COUNTED.get(name) or _MODULE_OF.get(name) or _READ.get(name)
    if module is None:
        raise MakemoreError(f"unknown model type {name!r} (choose from {', '.join(MODEL_TYPES)})")
    return importlib.import_module(f"{__name__}.{module}").MODELS[name]


_SAID_WITH_AN = frozenset({"ngram", "mlp", "rnn", "lstm"})  # said "en-gram", "em-el-pee", "ar-en-en", "el-es-tee-em"


def a_model(name: str) -> str:
    """'a counts model', 'an ngram model', 'a transformer model': the type with its article, for messages."""
    return f"{'an' if name in _SAID_WITH_AN or name[:1] in 'aeiou' else 'a'} {name} model"


def check_config(config: ModelConfig, name: str) -> None:
    """Shared size checks, then the model's own."""
    for field in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_embd2"):
        value = getattr(config, field)
        if not isinstance(value, int) or value < 1:
            raise MakemoreError(f"{field} must be a positive integer, got {value!r}")
    get_model(name).check(config)
