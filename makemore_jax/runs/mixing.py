"""mix: a mixture of trained work directories, its weights fitted on their shared dev split, saved."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from ..data.words import SPLITS, Dataset
from ..errors import MakemoreError
from ..models import mixture
from ..models.losses import perplexity, with_perplexities
from ..seeding import seed_key
from ..store import checkpoint
from ..training.fitted import Fitted
from . import inputs
from .events import Line, Watch, ignore
from .training import Outcome
from .workdir import WorkDir, check_path


def mix(model_dirs: Sequence[str], *, workdir: str | None = None, watch: Watch = ignore) -> Outcome:
    """p(next) = Σ w_k p_k(next) over the models saved in model_dirs, the weights fitted on the dev split of
    the data they were trained on (the same data, seed and split for all); saved to workdir (if given).

    watch hears the table of every split's NLL for each model and the mixture.
    """
    if isinstance(model_dirs, (str, os.PathLike)):
        raise MakemoreError("mix: give a list of work directories")
    model_dirs = [os.fspath(d) for d in model_dirs]
    if workdir is not None:
        check_path(workdir)
        if os.path.abspath(workdir) in {os.path.abspath(d) for d in model_dirs}:
            raise MakemoreError(f"the mixture's work directory {workdir} is one of its models: choose another")
    if len(model_dirs) < 2:
        raise MakemoreError("a mixture needs at least two model directories")
    loaded = [checkpoint.load(d, "model") for d in model_dirs]
    members: list[Fitted] = []
    for d, ld in zip(model_dirs, loaded):
        if not isinstance(ld.fitted, Fitted):
            raise MakemoreError(f"{d} holds a mixture: mix its member models instead")
        members.append(ld.fitted)
    mixture.check_members(members)
    first = mixture.data_member(members)
    data = _shared_data(model_dirs, loaded, members, first)
    mix_model, report = mixture.fit(members, data)
    for line in _table(model_dirs, loaded, report):
        watch(Line(line))
    outcome = Outcome(mix_model, 0, report["mixture"].get("dev"), {}, loaded[first].training, [], None, data)
    if workdir is not None:
        with WorkDir.held(workdir) as held:
            held.save_mixture(mix_model, loaded, model_dirs, report)
        watch(Line(f"saved to {workdir.rstrip(os.sep)}{os.sep}"))
    outcome.metrics = with_perplexities({f"{s}_nll": report["mixture"].get(s) for s in SPLITS})
    return outcome


def _shared_data(
    model_dirs: Sequence[str], loaded: Sequence[checkpoint.Loaded], members: Sequence[Fitted], first: int
) -> Dataset:
    """The split the members fitted here were trained on, rebuilt from their recorded input (which must be
    the same); first: the first of them."""
    digest = loaded[first].training.get("input_sha256")
    for d, ld, m in zip(model_dirs, loaded, members):
        if m.model_def.fitted_here and ld.training.get("input_sha256") != digest:
            raise MakemoreError(f"{d} was trained on other data than {model_dirs[first]}")
    path = loaded[first].training.get("input")
    try:
        read_in = inputs.read(path if isinstance(path, str) and path else "")
    except MakemoreError:
        raise MakemoreError(f"the models' training input {path} is gone: the dev split cannot be rebuilt") from None
    if read_in.sha256 != digest:
        raise MakemoreError(
            f"the models' training input {path} changed since training: the dev split cannot be rebuilt"
        )
    assert read_in.words is not None
    cfg = members[first].config
    return Dataset.build(read_in.words, seed_key(cfg.seed, "split"), cfg.split)


def _table(model_dirs: Sequence[str], loaded: Sequence[checkpoint.Loaded], report: mixture.Report) -> list[str]:
    splits = [s for s in SPLITS if s in report["mixture"]]

    def cells(nlls: Iterable[float]) -> str:  # each split's NLL and perplexity
        return "  ".join(f"{x:9.4f} ({perplexity(x):6.2f})" for x in nlls)

    lines = [f"{'model':<40} {'weight':>7}  " + "  ".join(f"{s + ' NLL (ppl)':>18}" for s in splits)]
    for k, (d, ld) in enumerate(zip(model_dirs, loaded)):
        label = f"{d} ({ld.fitted.type})"
        lines.append(f"{label:<40} {report['weights'][k]:7.3f}  " + cells(report["members"][s][k] for s in splits))
    lines.append(f"{'mixture':<40} {1:7.3f}  " + cells(report["mixture"][s] for s in splits))
    return lines
