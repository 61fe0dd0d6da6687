"""TrainingRun: one training run, from the settings a user gave to the saved model.

The command line (`makemore train`) and Python (``makemore_jax.train``) both
start a TrainingRun and differ only in how they show its events: the same
settings and seed give the same model, metrics and work directory through
either, and either resumes a run the other began.

A trained model is the best by dev NLL among the evaluations (the last state
goes to last.json, for --resume); a counted one is complete when counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace

from ..data.hosts import SlicedDataset
from ..data.words import SPLITS, Dataset
from ..errors import MakemoreError, counted
from ..models import a_model, get_model
from ..models.losses import with_perplexities
from ..store import checkpoint
from ..store.checkpoint import Snapshot
from ..training.config import SETTINGS, TrainConfig, settings_for, takers, takes
from ..training.evaluate import split_nll
from ..training.fitted import AnyFitted, Fitted
from ..training.parallel import DataParallel
from ..training.sizes import check_fits
from ..training.steps import make_optimizer
from ..training.trainer import Interrupted, LossNotFinite, Record, TrainState, evaluation_words, fit, new_model
from . import inputs, placement
from . import tensorboard as curves
from .events import Line, Phase, Step, TrainingBegins, Watch, ignore
from .workdir import WorkDir, check_path

__all__ = ["Interrupted", "Outcome", "TrainingRun"]


@dataclass
class Outcome:
    """What a run leaves: the model (the best by dev, or the counted one) at its step, the figures of every
    split, the training record, the metrics of every chunk, and the latest state (a trained model's last
    parameters and optimizer moments, what last.json holds)."""

    fitted: AnyFitted
    step: int = 0
    best_dev: float | None = None
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    history: list[Record] = field(default_factory=list)
    last: Snapshot | None = None
    data: Dataset | None = None  # the split input (this process's part, in a multi-host run)

    def best(self) -> Snapshot:
        return Snapshot(self.fitted, self.step, self.best_dev, self.training, self.metrics)


class TrainingRun:
    """One training run. source: a path, a list of words, or None (the bundled names.txt; with resume, the
    input the run recorded). settings: those given (the rest default by the model type), model_type
    (default bigram). workdir: where the run is saved as it goes (None: nowhere). resume: continue the run
    saved in workdir exactly where it stopped. watch hears the run's events; stop_requested, asked after
    each chunk of steps, ends the run (saved) with Interrupted. tensorboard: TensorBoard curves in the work
    directory too (runs.tensorboard)."""

    def __init__(
        self,
        source: inputs.Input = None,
        *,
        model_type: str | None = None,
        settings: Mapping[str, object] | None = None,
        workdir: str | None = None,
        resume: bool = False,
        where: placement.Placement | None = None,
        watch: Watch = ignore,
        stop_requested: Callable[[], bool] | None = None,
        tensorboard: bool = False,
    ) -> None:
        if resume and workdir is None:
            raise MakemoreError("resume: give the work directory of the run to resume")
        if tensorboard and workdir is None:
            raise MakemoreError("tensorboard: the curves are written into the work directory: give one")
        if tensorboard:
            curves.check_available()
        self.tensorboard = tensorboard
        self.source, self.model_type, self.given = source, model_type, dict(settings or {})
        self.workdir, self.resume = workdir, resume
        self.where = where or placement.Placement()
        self.watch, self.stop_requested = watch, stop_requested
        self.writer = True

    def run(self) -> Outcome:
        """Train (or count), save, score: the Outcome. Every mistake is refused before the first write."""
        if self.workdir is not None:
            check_path(self.workdir)
        parallel = self.where.open()  # before any JAX computation: it may join a multi-host run
        self.writer = placement.is_writer()
        holding = self.workdir is not None and self.writer
        if self.resume:
            assert self.workdir is not None
            if not os.path.isdir(self.workdir):
                raise MakemoreError(f"{self.workdir}: no such work directory (train a model there first)")
        with WorkDir.held(self.workdir, self.resume) if holding else nullcontext() as workdir:  # type: ignore[arg-type]
            model, state, training, data = self._start(parallel)
            if model.model_def.counted:
                if self.tensorboard:
                    raise MakemoreError(f"tensorboard: {a_model(model.type)} is counted, not trained: no curves")
                return self._finish_counted(model, training, data, workdir)
            return self._train(model, state, training, data, parallel, workdir)

    # ---- the start: a new model, or the saved run ------------------------------------------------------------

    def _start(self, parallel: DataParallel | None) -> tuple[Fitted, TrainState | None, dict, Dataset]:
        if self.resume:
            model, state, training = self._saved_run()
            source = self.source if self.source is not None else inputs.recorded(training)
            data, read_in, num_words = self._read(source, model.config, parallel, training)
            if data.vocab != model.vocab:
                raise MakemoreError("resume: the input's vocabulary differs from the saved model's")
            check_fits(model.config, data, parallel)  # this machine may hold less than the one that began the run
        else:
            cfg = settings_for(self.model_type or "bigram", self.given)
            if cfg.steps == 0 and not get_model(cfg.type).counted:
                raise MakemoreError("steps 0: nothing to train (give at least 1 step)")
            if parallel is not None and not get_model(cfg.type).counted:
                parallel.check_batch(cfg.batch_size)
            data, read_in, num_words = self._read(self.source, cfg, parallel)
            check_fits(cfg, data, parallel)  # what cannot fit is refused before counting, compiling or a write
            with self._phase("counting" if get_model(cfg.type).counted else "initialising") as tell:
                model, state = new_model(cfg, data, parallel, progress=lambda text: tell(text)), None
            training = read_in.record(num_words)
        self._tell_start(data, read_in, num_words, parallel)
        return model, state, training, data

    def _read(
        self, source: inputs.Input, cfg: TrainConfig, parallel: DataParallel | None, saved: dict | None = None
    ) -> tuple[Dataset, inputs.Words, int]:
        def same_input(read_in: inputs.Words) -> None:
            if saved is not None and read_in.sha256 != saved.get("input_sha256"):
                if self.source is None:  # the path the run recorded, whose words are no longer those it was trained on
                    raise MakemoreError(
                        f"resume: the run's input {read_in.shown} changed since training: "
                        "give the words it was trained on"
                    )
                raise MakemoreError(f"resume: {read_in.shown} is not the input this run was trained on")

        with self._phase(f"reading {inputs.shown(source)}"):
            return inputs.dataset(source, cfg, parallel, same_input)

    def _saved_run(self) -> tuple[Fitted, TrainState, dict]:
        """Model, state and training record of the run in the work directory; settings that contradict it refused."""
        assert self.workdir is not None
        if self.model_type is not None and get_model(self.model_type).counted:
            raise MakemoreError(
                f"resume: {a_model(self.model_type)} is counted in one pass; there is nothing to resume"
            )
        _refuse_resuming_counted(self.workdir)
        if checkpoint.is_mixture(self.workdir):
            raise MakemoreError(f"resume: {self.workdir} holds a mixture; there is nothing to resume")
        loaded = checkpoint.load(self.workdir, "last")
        model = loaded.fitted
        assert isinstance(model, Fitted)
        if self.model_type is not None and self.model_type != model.type:
            raise MakemoreError(f"resume: {self.workdir} holds {a_model(model.type)}, not {self.model_type}")
        _check_against_saved(model, self.given)
        if "steps" in self.given:
            model.config = replace(model.config, steps=self.given["steps"])  # type: ignore[arg-type]
        optimizer = make_optimizer(model.config)
        path = os.path.join(self.workdir, "last.json")
        opt_state = checkpoint.restore_opt_state(loaded, optimizer.init(model.params), path)
        history = [r for r in checkpoint.read_metrics(self.workdir) if r.get("step", 0) <= loaded.step]
        return model, TrainState(model.params, opt_state, loaded.step, loaded.best_dev, history), loaded.training

    def _tell_start(self, data: Dataset, read_in: inputs.Words, num_words: int, parallel: DataParallel | None) -> None:
        if self.writer:
            sizes = " / ".join(f"{s} {data.sizes[s]:,}" for s in SPLITS)
            self.watch(
                Line(f"data: {read_in.shown}: {counted(num_words, 'word')} ({sizes}), vocabulary of {data.vocab.size}")
            )
            self.watch(Line(placement.describe(parallel)))
        if isinstance(data, SlicedDataset):  # data.local_only: one process's part of a multi-host run
            parsed, first, end = data.parsed
            self.watch(
                Line(
                    f"process {placement.process_index()}: parsed {parsed:,} of the {num_words:,} words "
                    f"(bytes {first:,} to {end:,} of {read_in.shown})"
                )
            )

    # ---- training: chunks of compiled steps, saved at each evaluation ---------------------------------------

    def _train(
        self,
        model: Fitted,
        state: TrainState | None,
        training: dict,
        data: Dataset,
        parallel: DataParallel | None,
        workdir: WorkDir | None,
    ) -> Outcome:
        cfg = model.config
        start = state.step if state else 0
        tb = curves.Curves(workdir.path, cfg, start) if self.tensorboard and workdir is not None else None
        saves = _Saves(training, start, workdir, tb)
        if self.writer:
            self.watch(TrainingBegins(cfg.steps, start))
        tell = (lambda record: self.watch(Step(record, cfg.steps))) if self.writer else None
        try:
            state = fit(model, data, state, tell, saves.checkpoint, self.stop_requested, parallel)
        except Interrupted as stop:
            stop.saved = workdir is not None and stop.step > start
            raise
        except LossNotFinite as bad:  # said again, with whether this run had a step of its own to save
            wrote = workdir is not None and bad.good_step > start
            raise LossNotFinite(bad.loss, bad.step, bad.good_step, wrote) from None
        finally:
            if tb is not None:
                tb.close()
        if not self.writer:
            self.watch(
                Line(f"process {placement.process_index()}: trained to step {cfg.steps:,}; process 0 saves the model")
            )
            return Outcome(model, state.step, state.best_dev, {}, training, state.history, None, data)
        final = saves.best or Snapshot(replace(model), state.step, state.best_dev, training)
        record = next((r for r in state.history if r["step"] == final.step and "dev_nll" in r), None)
        if data.local_only:  # scoring is a collective now; the best model was scored when it was the newest
            scored = record or {}
            metrics = {f"{s}_nll": scored.get(f"{s}_nll") for s in SPLITS}
        else:
            metrics = self._score(final.fitted, data, cfg, record)
        outcome = Outcome(
            final.fitted, final.step, None, with_perplexities(metrics), training, state.history, saves.latest, data
        )
        outcome.best_dev = outcome.metrics["dev_nll"]
        return self._save_final(outcome, workdir, f" (best by dev, step {final.step:,})")

    def _finish_counted(self, model: Fitted, training: dict, data: Dataset, workdir: WorkDir | None) -> Outcome:
        if data.local_only or self.writer:  # every process scores its part of a multi-host run (a collective)
            metrics = self._score(model, data, model.config)
        if not self.writer:
            self.watch(Line(f"process {placement.process_index()}: counted; process 0 saves the model"))
            return Outcome(model, 0, None, {}, training, [], None, data)
        outcome = Outcome(model, 0, None, with_perplexities(metrics), training, [], None, data)
        outcome.best_dev = outcome.metrics["dev_nll"]
        return self._save_final(outcome, workdir, "")

    def _save_final(self, outcome: Outcome, workdir: WorkDir | None, which: str) -> Outcome:
        """The model with its figures saved (model.json: the final write), and the run's result line told."""
        if workdir is not None:
            workdir.save(best=outcome.best())
        model = outcome.fitted
        self.watch(Line(f"{model.model_def.label(model.config)}{which}: {nll_line(outcome.metrics)}"))
        if workdir is not None:
            self.watch(Line(f"saved to {workdir.path}/"))
        return outcome

    def _score(
        self, scored: AnyFitted, data: Dataset, cfg: TrainConfig, record: Record | None = None
    ) -> dict[str, float | None]:
        """dev and test whole, train on the evaluations' sample (whole unless it is large); what the
        evaluation of the scored model during training (record) already has is taken from it."""
        sample = evaluation_words(data, cfg)
        nll: dict[str, float | None] = {
            s: record[f"{s}_nll"]
            for s in ("train", "dev")
            if record and record.get(f"{s}_nll") is not None and (s == "train" or sample.words[s] is data.words[s])
        }
        with self._phase("scoring") as tell:
            progress = lambda split, done, total: tell("", done, total, split)  # noqa: E731
            if "train" not in nll:
                nll.update(split_nll(scored, sample, ["train"], progress))
            nll.update(split_nll(scored, data, [s for s in ("dev", "test") if s not in nll], progress))
        return {f"{s}_nll": nll[s] for s in SPLITS}

    @contextmanager
    def _phase(self, label: str) -> Iterator[Callable[..., None]]:
        """Phase events around a block; the block gets tell(text="", done=None, total=None, what="")."""
        if not self.writer:
            yield lambda *a, **k: None
            return
        self.watch(Phase(label))
        try:
            yield lambda text="", done=None, total=None, what="": self.watch(
                Phase(f"{label} {text}" if text else label, done, total, what)
            )
        finally:
            self.watch(Phase(label, over=True))


class _Saves:
    """What a training run keeps at each evaluation: its best model by dev and its latest state, in memory
    (a run without a work directory has them too) and in its work directory (with its curves), once the run
    has a step of its own to save."""

    def __init__(self, training: dict, start: int, workdir: WorkDir | None, tb: curves.Curves | None) -> None:
        self.training, self.start, self.workdir, self.tb = training, start, workdir, tb
        self.best: Snapshot | None = None
        self.latest: Snapshot | None = None
        if start and workdir is not None and os.path.exists(os.path.join(workdir.path, "model.json")):
            saved = checkpoint.load(workdir.path, "model")  # a resumed run's best so far
            self.best = Snapshot(saved.fitted, saved.step, saved.best_dev, training)

    def checkpoint(self, now: Fitted, st: TrainState, is_best: bool) -> None:
        """trainer.fit's on_checkpoint."""
        self.latest = Snapshot(replace(now), st.step, st.best_dev, self.training, opt_state=st.opt_state)
        if is_best:
            self.best = replace(self.latest, opt_state=None)
        if self.workdir is not None and st.step > self.start:  # no step of its own yet: nothing of it to write
            self.workdir.save(st.history, self.best if is_best else None, self.latest)
            if self.tb is not None:
                self.tb.add(st.history)


def nll_line(metrics: Mapping[str, float | None]) -> str:
    """'train NLL 2.4611 (ppl 11.72)  dev NLL ...  test NLL ...': each split's NLL and perplexity."""
    parts = []
    for s in SPLITS:
        nll, ppl = metrics[f"{s}_nll"], metrics[f"{s}_ppl"]
        shown = "n/a" if nll is None else f"{float(nll):.4f}"
        parts.append(f"{s} NLL {shown}" + ("" if ppl is None else f" (ppl {ppl:.2f})"))
    return "  ".join(parts)


def _check_against_saved(model: Fitted, given: Mapping[str, object]) -> None:
    """Settings given to a resumed run: its type must take them, and each must be the saved one (steps may grow)."""
    old = model.config.to_json()
    for name, value in given.items():
        if name not in SETTINGS:
            raise MakemoreError(f"unknown setting {name!r}")
        SETTINGS[name].kind.check(name, value)
        if not takes(model.model_def, name):
            raise MakemoreError(f"{name}: the {model.type} model does not take this setting ({takers(name)})")
        value = list(value) if isinstance(value, tuple) else value
        if name != "steps" and name in old and old[name] != value:
            raise MakemoreError(f"resume: {name} {value} differs from the saved run's {old[name]}")


def _refuse_resuming_counted(workdir: str) -> None:
    """A work directory without last.json whose model is counted: say so, not that last.json is missing."""
    if os.path.exists(os.path.join(workdir, "last.json")) or not os.path.exists(os.path.join(workdir, "model.json")):
        return
    try:
        held = checkpoint.load(workdir, "model").fitted
    except MakemoreError:
        return  # loading "last" says what is wrong
    if not held.model_def.trained:
        how = "counted in one pass" if held.model_def.counted else "read whole from another tool's file"
        again = " (train it again without resuming)" if held.model_def.counted else ""
        raise MakemoreError(
            f"resume: {workdir} holds {a_model(held.type)}, which is {how}: there is nothing to resume{again}"
        )
