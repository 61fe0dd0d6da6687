"""makemore-jax from Python: train, tune or mix as the command line does, or load a work directory;
then sample, score, save.

    import makemore_jax
    model = makemore_jax.train("names.txt", workdir="out", type="transformer", steps=2000, progress=print)
    model = makemore_jax.train("names.txt", workdir="out", resume=True, steps=4000)   # goes on to 4,000 steps
    model = makemore_jax.load("out")            # what `makemore train -o out` saved
    model.sample(5, seed=0, prefix="ma")         # the names `makemore sample -o out --prefix ma -n 5` prints
    model.nll(["emma", "olivia"])                # mean NLL per character, the end included
    model = makemore_jax.train(["emma", "olivia", ...], type="ngram", order=5)
    model.save("ng5")

The command line and this module are two doors to the same functions:
``train`` is the run `makemore train` starts (runs.training.TrainingRun), ``tune``
and ``mix`` those of `makemore tune` and `makemore mix`, ``Model.sample`` what
`makemore sample` prints. The same settings and seed give the same model,
work directory and names through either door.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data.words import Vocabulary, WordArray, parse_word_array, read_bytes
from .errors import MakemoreError
from .models.losses import perplexity
from .models.mixture import Mixture
from .runs import inputs, mixing, tuning
from .runs.events import Watch, ignore
from .runs.placement import Placement
from .runs.training import Interrupted, Outcome, TrainingRun
from .runs.workdir import WorkDir
from .sampling import NotEnough, check_sizes, sample_stream, steering
from .seeding import MAX_SEED, seed_key
from .store import checkpoint
from .store.checkpoint import Snapshot
from .training.evaluate import word_nll
from .training.fitted import AnyFitted

__all__ = ["Interrupted", "Model", "NotEnough", "import_model", "load", "mix", "perplexity", "train", "tune"]


@dataclass
class Model:
    """A model as a user holds it: ``fitted`` (a counted or trained model, or a mixture) with its training
    record, step, metrics and, from ``train``, its run's history and latest state; see ``load`` and ``train``.

    input_words: the words of its training input (every split), when known:
    ``new_only`` sampling leaves them out; a loaded model reads them back
    from its training input.
    """

    fitted: AnyFitted
    training: dict = field(default_factory=dict)
    step: int = 0
    best_dev: float | None = None
    metrics: dict = field(default_factory=dict)
    input_words: frozenset[str] | None = None
    history: list[dict] = field(default_factory=list)  # the run's metrics, a record per chunk of steps
    last: Snapshot | None = field(default=None, repr=False)  # the run's latest state: what --resume continues

    @classmethod
    def of(cls, outcome: Outcome) -> Model:
        """The model a run left, with its record, metrics and latest state."""
        words = None
        if outcome.data is not None and not outcome.data.local_only:
            words = frozenset(w for split in outcome.data.words.values() for w in split)
        return cls(
            outcome.fitted,
            outcome.training,
            outcome.step,
            outcome.best_dev,
            outcome.metrics,
            words,
            list(outcome.history),
            outcome.last,
        )

    @property
    def type(self) -> str:
        return self.fitted.type

    @property
    def vocab(self) -> Vocabulary:
        return self.fitted.vocab

    def sample(
        self,
        n: int = 10,
        *,
        seed: int = 0,
        prefix: str = "",
        min_len: int = 0,
        max_len: int | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        unique: bool = False,
        new_only: bool = False,
    ) -> list[str]:
        """n names drawn with the seed (the names `makemore sample --seed SEED` prints).

        prefix: every name starts with it, drawn from the model given the
        prefix; min_len / max_len: bounds on the length (characters); top_k,
        top_p: draw only from the k most likely characters, or the most likely
        ones up to probability p; unique: no name twice; new_only: no name of
        the training input (of any split: no name the model saw or was scored on).
        The names are the seed's stream of names, in order, less those that do
        not qualify (a repeat, a known word, one the model could not make
        min_len long): the first k names never change when more are asked for.
        The walk along the stream is bounded: NotEnough (a MakemoreError) says
        how many were found. Every argument is checked first, as the command
        line checks its flags: a MakemoreError names the one that is wrong.
        """
        names = []
        try:
            for chunk in self.sample_chunks(
                n,
                seed=seed,
                prefix=prefix,
                min_len=min_len,
                max_len=max_len,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                unique=unique,
                new_only=new_only,
            ):
                names += chunk
        except NotEnough as short:
            raise NotEnough(str(short), names) from None
        return names

    def sample_chunks(
        self,
        n: int = 10,
        *,
        seed: int = 0,
        prefix: str = "",
        min_len: int = 0,
        max_len: int | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        unique: bool = False,
        new_only: bool = False,
    ) -> Iterator[list[str]]:
        """The names of ``sample``, handed out in chunks as they are drawn (memory does not grow with n,
        except for what unique and new_only must remember). NotEnough, after the last chunk, has .names empty."""
        check_sample_arguments(
            n=n,
            seed=seed,
            prefix=prefix,
            min_len=min_len,
            max_len=max_len,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            unique=unique,
            new_only=new_only,
        )
        steer = steering(self.vocab, prefix, int(min_len), float(top_p))
        exclude = self.known_words() if new_only else frozenset()
        return sample_stream(
            self.fitted,
            seed_key(int(seed), "sample"),
            int(n),
            unique=unique,
            exclude=exclude,
            max_len=None if max_len is None else int(max_len),
            temperature=float(temperature),
            top_k=int(top_k),
            steer=steer,
        )

    def log_prob(self, words: Sequence[str]) -> np.ndarray:
        """Natural log-probability of each word, its end included: (len(words),) float.

        Each word is one word as a word list holds it (``check_words``): a
        MakemoreError names a word that is not a str, holds a line break, has
        whitespace at either end, or a character outside the vocabulary.
        """
        words = check_words(words, self.vocab)
        return -np.asarray(word_nll(self.fitted, words), np.float64)

    def nll(self, words: Sequence[str]) -> float:
        """Mean negative log-likelihood per character of the words, each word's end included."""
        words = check_words(words, self.vocab)
        if not words:
            raise MakemoreError("no words to score")
        return float(-self.log_prob(words).sum() / sum(len(w) + 1 for w in words))

    def perplexity(self, words: Sequence[str]) -> float:
        """exp(nll(words))."""
        return perplexity(self.nll(words))

    def known_words(self) -> frozenset[str]:
        """The words of the training input, every split: kept from ``train``, or read back from the input file."""
        if self.input_words is None:
            try:
                self.input_words = frozenset(training_input(self.training))
            except MakemoreError as err:
                raise MakemoreError(f"{err}: cannot tell which names are new") from None
        return self.input_words

    def export(self, path: str, *, format: str) -> str:
        """Write the model to a file other tools read (what `makemore export --format FORMAT` writes); a line
        saying what was written. arpa: a counting or n-gram model, for KenLM and SRILM; safetensors: any one
        model's arrays, with its type, settings and vocabulary in the metadata (``import_model`` reads it)."""
        from .models.ngram import arpa
        from .store import safetensors, userfile

        userfile.check_user_file(path, "FILE")
        if format == "arpa":
            text, counts = arpa.arpa_text(self.fitted)
            userfile.write_user_file(path, text.encode("utf-8"), "FILE")
            listed = ", ".join(f"{n:,} {k}-grams" for k, n in enumerate(counts, start=1))
            return f"ARPA, order {len(counts)} ({listed})"
        if format == "safetensors":
            raw = safetensors.model_bytes(self.fitted)
            userfile.write_user_file(path, raw, "FILE")
            return f"safetensors, {self.fitted.model_def.label(self.fitted.config)} ({len(raw):,} bytes)"
        if format == "makemore":
            from .store import makemore

            state = makemore.to_state_dict(self.fitted)
            userfile.write_user_file(path, makemore.pt_bytes(state), "FILE")
            return f"a makemore.py state_dict of its {self.type} ({len(state)} entries)"
        raise MakemoreError(f"format must be one of arpa, safetensors, makemore, got {format!r}")

    def save(self, workdir: str) -> None:
        """Write the model to a work directory, replacing whatever run it held, whole (docs/workdir.md).

        A model from ``train`` is written as its run would have written it (model.json, and for a trained
        model last.json and metrics.jsonl: `makemore train --resume` continues it); a loaded one as it was
        loaded. A mixture is saved by ``mix`` (with its members), not here.
        """
        if isinstance(self.fitted, Mixture):
            raise MakemoreError(
                "a mixture is saved with its members, by mix(..., workdir=...); it is not one checkpoint"
            )
        with WorkDir.held(os.fspath(workdir)) as held:
            best = Snapshot(self.fitted, self.step, self.best_dev, self.training, self.metrics)
            held.save(self.history if self.history else None, best, self.last)


def _integer(name: str, value: object, low: int, high: int | None = None) -> None:
    """value must be an int (not a bool) from low on (to high): else a MakemoreError naming the argument."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < low
        or (high is not None and int(value) > high)
    ):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise MakemoreError(f"{name} must be an integer {span}, got {value!r}")


def _real(name: str, value: object, what: str, ok: Callable[[float], bool]) -> None:
    """value must be a real number (not a bool) for which ok holds (as the float sampling uses): else a
    MakemoreError saying what it must be."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not ok(float(value))
    ):
        raise MakemoreError(f"{name} must be {what}, got {value!r}")


def check_sample_arguments(
    *,
    n: int,
    seed: int,
    prefix: str,
    min_len: int,
    max_len: int | None,
    temperature: float,
    top_k: int,
    top_p: float,
    unique: bool,
    new_only: bool,
) -> None:
    """The arguments of ``Model.sample``, checked as the command line checks its flags (the same ranges).

    A MakemoreError names the first that is wrong: an int argument given as a
    str, float or bool, a number out of range, nan, None where not allowed.
    """
    _integer("n", n, 0)
    _integer("seed", seed, 0, MAX_SEED)
    if not isinstance(prefix, str):
        raise MakemoreError(f"prefix must be a str, got {prefix!r}")
    _integer("min_len", min_len, 0)
    if max_len is not None:
        _integer("max_len", max_len, 1)
    _real("temperature", temperature, "a finite number >= 0", lambda t: t >= 0)
    _integer("top_k", top_k, 0)
    _real("top_p", top_p, "a number in (0, 1]", lambda p: 0 < p <= 1)
    for name, flag in (("unique", unique), ("new_only", new_only)):
        if not isinstance(flag, (bool, np.bool_)):
            raise MakemoreError(f"{name} must be True or False, got {flag!r}")
    check_sizes(int(n), None if max_len is None else int(max_len))


def check_words(words: Sequence[str], vocab: Vocabulary) -> list[str]:
    """The words as a list, each one a word as a word list holds it (data.words.parse_words' rules);
    else a MakemoreError naming the word and its character.

    Refused: a word that is not a str, one with a line break (\\n or \\r: a
    word is one line), whitespace at either end (the parser strips it), a
    character outside the vocabulary. One str in place of a list of words is
    refused too (it would be scored character by character).
    """
    if isinstance(words, (str, bytes)):
        raise MakemoreError(f"words must be a list of words, got one {type(words).__name__}: {words!r}")
    words = list(words)
    known = set(vocab.chars)
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise MakemoreError(f"word {i + 1} is not a str: {word!r}")
        breaks = [c for c in word if c in "\n\r"]
        if breaks:
            raise MakemoreError(f"word {word!r} holds a line break ({breaks[0]!r}): a word is one line of a word list")
        if word.strip() != word:
            ch = word[0] if word[0].isspace() else word[-1]
            raise MakemoreError(f"word {word!r} has whitespace at an end ({ch!r}), which a word list strips")
        unknown = [c for c in word if c not in known]
        if unknown:
            raise MakemoreError(
                f"character {unknown[0]!r} (U+{ord(unknown[0]):04X}) in word {word!r} is not in the model's vocabulary"
            )
    return words


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


def import_model(
    path: str,
    *,
    format: str,
    workdir: str | None = None,
    type: str | None = None,
    words: inputs.Input = None,
    **sizes: int,
) -> Model:
    """The model in a file of another tool's format (what `makemore import` reads), saved to workdir if given
    (replacing the run it held). safetensors: a file ``Model.export`` (or `makemore export`) wrote. makemore:
    a makemore.py state_dict (model.pt) of the given type, with its sizes (n_layer, n_head, n_embd, n_embd2:
    makemore.py's 4/4/64/64 by default), and the vocabulary and block size of the words it was trained on
    (a path, a list, or None: names.txt), built as makemore.py builds them. arpa: a character-level ARPA
    file (KenLM, SRILM), a backoff model that scores words by its backoff rules (docs/interop.md)."""
    from .store import arpa, makemore, safetensors

    path = os.fspath(path)
    training: dict = {"imported_from": os.path.abspath(path)}
    if format in ("safetensors", "arpa") and (type is not None or words is not None or sizes):
        raise MakemoreError(f"type, words and the sizes are for format makemore: a {format} file has its own")
    if format == "safetensors":
        fitted = safetensors.model_from_bytes(read_bytes(path), path)
    elif format == "arpa":
        fitted = arpa.read_file(path)
    elif format == "makemore":
        if type is None:
            raise MakemoreError("a makemore.py checkpoint does not say its model type: give it (--type)")
        read_in = inputs.read(words)
        assert read_in.words is not None
        block_size = int(read_in.words.lengths().max()) + 1
        arrays = makemore.read_pt(path)
        fitted = makemore.from_state_dict(arrays, type, read_in.words.vocab, block_size, sizes)
        training.update(read_in.record(len(read_in.words)))
    else:
        raise MakemoreError(f"format must be makemore, safetensors or arpa, got {format!r}")
    model = Model(fitted, training)
    if workdir is not None:
        model.save(os.fspath(workdir))
    return model


def load(workdir: str) -> Model:
    """The model saved in a work directory (the best by dev NLL; a mixture's directory gives the mixture)."""
    loaded = checkpoint.load(os.fspath(workdir), "model")
    return Model(loaded.fitted, loaded.training, loaded.step, loaded.best_dev, loaded.metrics)


def train(
    input: inputs.Input = None,
    *,
    workdir: str | None = None,
    resume: bool = False,
    progress: Watch | None = None,
    devices: int | None = None,
    device: str | None = None,
    tensorboard: bool = False,
    **settings: Any,
) -> Model:
    """Train (or count) a model as `makemore train` does: the same settings and seed give the same model.

    input: a path, a list of words (read by the rules of a file: each stripped, blank ones dropped), or
    None (the bundled names.txt; with resume, the input the run recorded). settings: type (bigram by
    default; counts, ngram, mlp, rnn, gru, lstm, bow, transformer, wavenet) and the settings of
    `makemore train` by their names (steps, lr, batch_size, n_embd, order, ...; docs/commands.md), each
    defaulting by the type; a setting the type does not take is refused. workdir: where the run is saved
    as it goes (the best model by dev, the latest state, the metrics), exactly as `makemore train -o`
    saves it; resume: continue the run saved there (begun here or by the command line). progress hears
    the run's events (progress=print logs them). devices, device, tensorboard: as --devices, --device and
    --tensorboard (TensorBoard curves in the work directory). The model
    is the best by dev NLL (a counted one: as counted), with its metrics and its run's latest state.
    Ctrl-C ends training with Interrupted, the last finished chunk saved in workdir.
    """
    model_type = settings.pop("type", None)
    run = TrainingRun(
        input,
        model_type=model_type,
        settings=settings,
        workdir=None if workdir is None else os.fspath(workdir),
        resume=resume,
        where=Placement(devices=devices, platform=device),
        watch=progress or ignore,
        tensorboard=tensorboard,
    )
    return Model.of(run.run())


def tune(
    input: inputs.Input = None,
    *,
    max_order: int = tuning.grid_search.DEFAULT_MAX_ORDER,
    workdir: str | None = None,
    progress: Watch | None = None,
    **settings: Any,
) -> Model:
    """Choose an n-gram model's order and smoothing on the dev split, as `makemore tune` does (settings:
    seed, split, memory); saved to workdir if given."""
    outcome = tuning.tune(
        input,
        max_order=max_order,
        settings=settings,
        workdir=None if workdir is None else os.fspath(workdir),
        watch=progress or ignore,
    )
    return Model.of(outcome)


def mix(model_dirs: Sequence[str], *, workdir: str | None = None, progress: Watch | None = None) -> Model:
    """The mixture of the models saved in model_dirs, weights fitted on dev, as `makemore mix` does;
    saved to workdir (with its members) if given."""
    outcome = mixing.mix(model_dirs, workdir=None if workdir is None else os.fspath(workdir), watch=progress or ignore)
    return Model.of(outcome)
