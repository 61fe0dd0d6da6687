"""tune: an n-gram model's order and smoothing chosen on the dev split, evaluated on test once, saved."""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..data.words import SPLITS
from ..errors import MakemoreError, counted
from ..models import get_model
from ..models.losses import with_perplexities
from ..models.ngram import memory_bytes
from ..training import tune as grid_search
from ..training.config import settings_for
from ..training.evaluate import split_nll
from ..training.sizes import check_fits, check_tunable
from ..training.trainer import new_model
from . import inputs
from .events import Line, Phase, Watch, ignore
from .training import Outcome, nll_line
from .workdir import WorkDir, check_path

TUNED_SETTINGS = ("seed", "split", "memory")  # what a tuning run takes; the grid chooses the rest


def tune(
    source: inputs.Input = None,
    *,
    max_order: int = grid_search.DEFAULT_MAX_ORDER,
    settings: Mapping[str, object] | None = None,
    workdir: str | None = None,
    watch: Watch = ignore,
) -> Outcome:
    """Count the training split once, score every order 1..max_order with add-k, Kneser-Ney and modified
    Kneser-Ney over a grid on dev, evaluate the best on test once, save it to workdir (if given)."""
    given = dict(settings or {})
    for name in given:
        if name not in TUNED_SETTINGS:
            raise MakemoreError(f"{name}: tuning takes only {', '.join(TUNED_SETTINGS)} (the grid chooses the rest)")
    if workdir is not None:
        check_path(workdir)
    cfg = settings_for("ngram", given)
    grid_search.check_max_order(max_order)  # from the setting alone, before the input is read
    watch(Phase(f"reading {inputs.shown(source)}"))
    data, read_in, num_words = inputs.dataset(source, cfg, None)
    watch(Phase(f"reading {inputs.shown(source)}", over=True))
    check_tunable(cfg, data, max_order)  # a dev split, and orders that can be counted: before counting
    sizes = " / ".join(f"{s} {len(data.words[s]):,}" for s in SPLITS)
    watch(Line(f"data: {read_in.shown}: {counted(num_words, 'word')} ({sizes}), vocabulary of {data.vocab.size}"))
    settings_grid = grid_search.grid(max_order)
    t0 = time.perf_counter()
    nll = grid_search.dev_nll(
        data.words["train"], data.words["dev"], data.vocab, settings_grid, memory_bytes(cfg.memory)
    )
    elapsed = time.perf_counter() - t0
    for line in grid_search.format_tables(settings_grid, nll):
        watch(Line(line))
    chosen = grid_search.best(settings_grid, nll)
    watch(
        Line(
            f"{len(settings_grid)} settings, orders 1..{max_order}, counted and scored on dev in {elapsed:.1f} s; "
            f"best: {chosen.describe()}"
        )
    )
    cfg = settings_for("ngram", {**given, **chosen.config_fields()})
    check_fits(cfg, data)  # the chosen order is at most max_order, checked above: this only confirms it
    model = new_model(cfg, data)
    metrics = with_perplexities({f"{s}_nll": v for s, v in split_nll(model, data).items()})  # test: once
    table = [
        {"order": s.order, "method": s.method, "value": s.value, "dev_nll": float(x)}
        for s, x in zip(settings_grid, nll)
    ]
    training = {**read_in.record(num_words), "tuning": table}
    outcome = Outcome(model, 0, metrics["dev_nll"], metrics, training, [], None, data)
    if workdir is not None:
        with WorkDir.held(workdir) as held:
            held.save(best=outcome.best())
    watch(Line(f"{get_model(cfg.type).label(cfg)}: {nll_line(metrics)}"))
    if workdir is not None:
        watch(Line(f"saved to {workdir}/"))
    return outcome
