"""makemore-jax from Python: load a work directory or train on a list of words, then sample, score, save.

    import makemore_jax
    model = makemore_jax.load("out")            # what `makemore train -o out` saved
    model.sample(5, seed=0, prefix="ma")         # the names `makemore sample -o out --prefix ma -n 5` prints
    model.nll(["emma", "olivia"])                # mean NLL per character, the end included
    model = makemore_jax.train(words, type="ngram", order=5)
    model.save("ng5")

The command line runs the same functions (``Model.sample`` for `sample`,
``load`` for every command that reads a work directory), so each thing has
one way to be done. The same seed gives the same names here and there.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .data.words import WordArray, parse_word_array, read_bytes
from .errors import MakemoreError
from .models.losses import perplexity, with_perplexities
from .sampling import NotEnough, generate_distinct, steering
from .seeding import seed_key
from .store import checkpoint
from .training.config import TrainConfig
from .training.evaluate import split_nll, word_nll
from .training.trainer import train as train_words

__all__ = ["Model", "NotEnough", "load", "train", "perplexity"]


@dataclass
class Model:
    """A trained (or counted, or mixed) model with its training record; see ``load`` and ``train``.

    input_words: the words of its training input (every split), when known:
    ``new_only`` sampling leaves them out; a loaded model reads them back
    from its training input.
    """

    model: object
    training: dict = field(default_factory=dict)
    step: int = 0
    best_dev: float | None = None
    metrics: dict = field(default_factory=dict)
    input_words: frozenset | None = None

    @property
    def type(self) -> str:
        return self.model.type

    @property
    def vocab(self):
        return self.model.vocab

    def sample(self, n: int = 10, *, seed: int = 0, prefix: str = "", min_len: int = 0, max_len: int | None = None,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, unique: bool = False,
               new_only: bool = False) -> list[str]:
        """n names drawn with the seed (the names `makemore sample --seed SEED` prints).

        prefix: every name starts with it, drawn from the model given the
        prefix; min_len / max_len: bounds on the length (characters); top_k,
        top_p: draw only from the k most likely characters, or the most likely
        ones up to probability p; unique: no name twice; new_only: no name of
        the training input (of any split: no name the model saw or was scored on). Where names are redrawn (unique, new_only) the
        redraws are bounded: NotEnough (a MakemoreError) says how many were found.
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise MakemoreError(f"seed must be an integer, got {seed!r}")
        steer = steering(self.vocab, prefix, min_len, top_p)
        exclude = self.known_words() if new_only else frozenset()
        return generate_distinct(self.model, seed_key(seed, "sample"), n, unique=unique, exclude=exclude,
                                 max_len=max_len, temperature=temperature, top_k=top_k, steer=steer)

    def log_prob(self, words: Sequence[str]) -> np.ndarray:
        """Natural log-probability of each word, its end included: (len(words),) float."""
        return -np.asarray(word_nll(self.model, list(words)), np.float64)

    def nll(self, words: Sequence[str]) -> float:
        """Mean negative log-likelihood per character of the words, each word's end included."""
        words = list(words)
        if not words:
            raise MakemoreError("no words to score")
        return float(-self.log_prob(words).sum() / sum(len(w) + 1 for w in words))

    def perplexity(self, words: Sequence[str]) -> float:
        """exp(nll(words))."""
        return perplexity(self.nll(words))

    def known_words(self) -> frozenset:
        """The words of the training input, every split: kept from ``train``, or read back from the input file."""
        if self.input_words is None:
            try:
                self.input_words = frozenset(training_input(self.training))
            except MakemoreError as err:
                raise MakemoreError(f"{err}: cannot tell which names are new") from None
        return self.input_words

    def save(self, workdir: str) -> None:
        """Write the model to a work directory that `makemore sample`, `eval` and ``load`` read."""
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise MakemoreError(f"{workdir}: exists and is not a directory")
        checkpoint.save(workdir, "model", self.model, step=self.step, best_dev=self.best_dev, training=self.training,
                        metrics=self.metrics)


def training_input(training: dict) -> WordArray:
    """The words of a saved model's training input, read again (a WordArray: a sequence of str held as arrays).

    MakemoreError when it is not recorded, is gone, or changed since training.
    """
    path = training.get("input")
    if not isinstance(path, str) or not path:
        raise MakemoreError("the model does not record its training input")
    try:
        raw = read_bytes(path)
    except MakemoreError:
        raise MakemoreError(f"{path} is gone") from None
    if hashlib.sha256(raw).hexdigest() != training.get("input_sha256"):
        raise MakemoreError(f"{path} changed since training")
    return parse_word_array(raw, source=path)


def load(workdir: str) -> Model:
    """The model saved in a work directory (the best by dev NLL; a mixture's directory gives the mixture)."""
    loaded = checkpoint.load(os.fspath(workdir), "model")
    return Model(loaded.model, loaded.training, loaded.step, loaded.best_dev, loaded.metrics)


def train(words: Sequence[str], **settings) -> Model:
    """Split the words with the seed, fit a model with the settings (those of `makemore train`), score it.

    settings: type ("bigram" by default, or counts, ngram, mlp, rnn, gru,
    lstm, bow, transformer, wavenet) and any TrainConfig field (seed, steps,
    lr, batch_size, order, ...), each defaulting as on the command line. A
    trained model keeps its final parameters (the command line keeps the best by dev).
    """
    cfg = TrainConfig.create(settings.pop("type", "bigram"), **settings).validate()
    model, state, data = train_words(list(words), cfg)
    metrics = with_perplexities({f"{s}_nll": v for s, v in split_nll(model, data).items()})
    return Model(model, {"num_words": len(words)}, state.step if state else 0, metrics["dev_nll"], metrics,
                 frozenset(words))

