"""Pictures: the count matrix, what the neural bigram learned, training curves, embeddings.

matplotlib (the ``plot`` extra, an optional dependency) is imported only
inside the functions that draw, and never through pyplot: each picture is a ``Figure`` on an Agg canvas,
so nothing here opens a window, touches a global figure list or needs a
display, and the rest of the package works without matplotlib installed.

Each picture has a builder that returns the Figure (``counts_figure``,
``weights_figure``, ``loss_figure``, ``embeddings_figure``), taking plain
arrays, so tests can read back what was drawn; and a ``plot_*`` function that
gathers the arrays from a word file or a work directory and writes the image.
Every figure says in its title what it shows and, on a second line, which
model, data and step.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from ..data.words import BOUNDARY_ID, Dataset, bigram_pairs, parse_word_array, read_bytes, read_word_array
from ..errors import MakemoreError
from ..models import Settings, a_model
from ..models.counts import count_matrix, smoothed_probs
from ..seeding import seed_key
from ..store import checkpoint
from ..store.checkpoint import METRICS_FILE, Loaded, read_metrics
from ..store.userfile import check_user_file, write_user_file
from ..training.evaluate import split_nll
from ..training.fitted import AnyFitted, Fitted
from ..training.trainer import new_model

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

MATPLOTLIB_MISSING = "matplotlib is needed: pip install 'makemore-jax[plot]'"
FORMATS = ("png", "svg")
KINDS = ("counts", "weights", "loss", "embeddings")
LABELLED_MAX_V = 32  # cells labelled with pair and count up to this vocabulary size
TICKS_MAX_V = 80  # one tick label per character up to this size


# ---- matplotlib, lazily -----------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    """A Figure of width × height inches on the Agg canvas, constrained layout."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MakemoreError(MATPLOTLIB_MISSING) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colors():
    from matplotlib import colors

    return colors


def save_figure(fig: Figure, path: str, fmt: str, dpi: int = 100, palette: bool = False) -> None:
    """Render to PNG or SVG (text kept as text) and write the file atomically, missing directories made.

    The file is written as ``store.userfile.write_user_file`` writes: a symbolic
    link is written through; a device, FIFO, socket or a work directory's own
    file is refused (MakemoreError), with nothing written.

    palette=True stores a PNG with 256 colours: for flat cells and text (the
    labelled count matrix) it looks the same at a third of the bytes, but it
    bands smooth colour gradients, so the other pictures keep full colour.
    """
    from matplotlib import rc_context

    buf = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "makemore-jax"}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # rare characters: an empty box
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    if fmt == "png" and palette:
        buf = _palette_png(buf)
    # through a symbolic link, never over a device, FIFO, socket or work directory's file (store.userfile)
    write_user_file(path, buf.getvalue(), "--save", make_parents=True)


def _palette_png(buf: io.BytesIO) -> io.BytesIO:
    """The PNG with at most 256 colours (Pillow comes with matplotlib, which depends on it)."""
    from PIL import Image

    out = io.BytesIO()
    buf.seek(0)
    with Image.open(buf) as image:
        image.convert("RGB").quantize(256).save(out, format="png", optimize=True)
    return out


def _metadata(fmt: str) -> dict:
    # no creation date: the same inputs give the same bytes
    return {"Software": "makemore-jax"} if fmt == "png" else {"Date": None}


def output_path(save: str | None, fmt: str | None, kind: str) -> tuple[str, str]:
    """Where to write and in which format: --format, else the suffix of --save, else PNG.

    Without --save the image is KIND.FORMAT in the current directory. The file
    is checked here, before anything is drawn: MakemoreError if it must not be
    written (store.userfile.check_user_file: a device, FIFO, socket, directory
    or a work directory's own file).
    """
    if fmt is not None and fmt not in FORMATS:
        raise MakemoreError(f"image format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if save is None:
        fmt = fmt or "png"
        check_user_file(f"{kind}.{fmt}", "--save", make_parents=True)
        return f"{kind}.{fmt}", fmt
    check_user_file(save, "--save", make_parents=True)
    suffix = os.path.splitext(save)[1].lower().lstrip(".")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise MakemoreError(f"--format {fmt} contradicts the suffix of {save}")
        return save, suffix
    if fmt is None:
        what = f"'.{suffix}'" if suffix else "no suffix"
        raise MakemoreError(f"{save}: {what}; name it .png or .svg, or give --format")
    return save, fmt


# ---- small helpers ----------------------------------------------------------------


def shown(char: str) -> str:
    """A character as drawn: space and other invisible characters get a visible stand-in."""
    if char == " ":
        return "␣"
    if not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def _escape(text: str) -> str:
    """Text for titles and ticks, where matplotlib would read $...$ as mathematics."""
    return text.replace("$", r"\$")


def _title(fig: Figure, what: str, details: str) -> None:
    """A title line, then the details ("model: ...; ... · data: ...").

    The details are broken at the dots or semicolons where they must be.
    """
    width = int(10 * fig.get_size_inches()[0])  # about ten characters of 12-point text to the inch
    pieces = [
        (" · " if k and not n else "; ", piece)
        for k, part in enumerate(details.split(" · "))
        for n, piece in enumerate(part.split("; "))
    ]
    lines: list[str] = []
    for sep, piece in pieces:
        if lines and len(lines[-1]) + len(sep) + len(piece) <= width:
            lines[-1] += sep + piece
        else:
            if lines and sep == "; ":
                lines[-1] += ";"
            lines.extend(textwrap.wrap(piece, width))
    fig.suptitle(_escape("\n".join([what, *lines])), fontsize=12)


def _char_axes(ax: Axes, chars: Sequence[str], V: int) -> None:
    """Characters as tick labels: every one up to TICKS_MAX_V, else every k-th (about 40 per axis)."""
    every = 1 if V <= TICKS_MAX_V else math.ceil(V / 40)
    ticks = np.arange(0, V, every)
    size = 9 if V <= LABELLED_MAX_V else 7
    ax.set_xticks(ticks, [_escape(chars[int(i)]) for i in ticks], fontsize=size)
    ax.set_yticks(ticks, [_escape(chars[int(i)]) for i in ticks], fontsize=size)
    shown_ = "" if every == 1 else f"; one in {every} labelled"
    ax.set_xlabel(f"next character (column{shown_})")
    ax.set_ylabel(f"current character (row{shown_})")


def _data_name(path: str) -> str:
    return os.path.basename(path) or path


def _dir(workdir: str) -> str:
    return workdir.rstrip("/" + os.sep) + os.sep


# ---- counts -----------------------------------------------------------------------


def counts_figure(
    counts_VxV: npt.ArrayLike, chars: Sequence[str], title: str, details: str, *, labels: bool | None = None
) -> Figure:
    """The count matrix as a heat map, each cell labelled with its pair and its count (as in the lecture).

    counts_VxV: integer (V, V), row = current id, column = next id; chars: the
    V characters as drawn, boundary first. labels=None labels the cells when
    V <= LABELLED_MAX_V; without labels the colours and axes remain. Colour is
    the square root of the count, so the rarer pairs still show.
    """
    N = np.asarray(counts_VxV)
    V = N.shape[0]
    labels = V <= LABELLED_MAX_V if labels is None else labels
    cell = 0.5 if labels else min(0.3, max(0.1, 10 / V))  # inches per cell
    fig = new_figure(V * cell + (1.0 if labels else 2.2), V * cell + 1.6)
    ax = fig.add_subplot()
    norm = _colors().PowerNorm(0.5, vmin=0, vmax=max(int(N.max()), 1))
    image = ax.imshow(N, cmap="Blues", norm=norm, interpolation="nearest")
    if labels:
        dark = norm(N) > 0.55
        for i in range(V):
            for j in range(V):
                color = "white" if dark[i, j] else "0.3"
                ax.text(
                    j, i, chars[i] + chars[j], ha="center", va="bottom", fontsize=7.5, color=color, parse_math=False
                )
                ax.text(j, i, str(int(N[i, j])), ha="center", va="top", fontsize=7.5, color=color, parse_math=False)
    _char_axes(ax, chars, V)
    if not labels:  # the labels say each count; without them a colour bar does
        fig.colorbar(image, ax=ax, shrink=0.5, label="count (colour: square root)")
    _title(fig, title, details)
    return fig


def plot_counts(input_path: str, save: str, fmt: str, dpi: int = 100, labels: bool | None = None) -> None:
    """Count matrix of all the words in input_path, drawn to save."""

    words = read_word_array(input_path)
    vocab = words.vocab
    xs, ys = bigram_pairs(words, vocab)
    N = np.asarray(count_matrix(jnp.asarray(xs), jnp.asarray(ys), vocab.size))
    chars = [shown(vocab.itos(i)) for i in range(vocab.size)]
    details = (
        f"model: counting, raw counts before smoothing · data: {_data_name(input_path)}, all {len(words):,} words, "
        f"{len(xs):,} pairs · step: none (counted, not trained)"
    )
    what = (
        "How often each character (row) is followed by each other (column);"
        f" '{vocab.itos(BOUNDARY_ID)}' is the start/end"
    )
    fig = counts_figure(N, chars, what, details, labels=labels)
    save_figure(fig, save, fmt, dpi, palette=vocab.size <= LABELLED_MAX_V if labels is None else labels)


# ---- what a trained model was trained on ------------------------------------------


def _load(workdir: str) -> Loaded:

    return checkpoint.load(workdir, "model")


def training_data(loaded: Loaded, workdir: str) -> Dataset:
    """The Dataset a saved model was trained on (same input, seed and split), or MakemoreError."""

    path = loaded.training.get("input", "")
    if not path or not os.path.exists(path):
        raise MakemoreError(
            f"{workdir}: the training input {path or '(unknown)'} is gone, so its counts cannot be rebuilt"
        )
    raw = read_bytes(path)
    if hashlib.sha256(raw).hexdigest() != loaded.training.get("input_sha256"):
        raise MakemoreError(f"{workdir}: {path} changed since training, so its counts cannot be rebuilt")
    cfg = loaded.fitted.config
    data = Dataset.build(parse_word_array(raw, source=path), seed_key(cfg.seed, "split"), cfg.split)
    if data.vocab != loaded.fitted.vocab:
        raise MakemoreError(f"{workdir}: the vocabulary of {path} differs from the model's")
    return data


def _split_text(cfg: Settings) -> str:
    total = sum(cfg.split)
    return "/".join(f"{100 * f / total:g}" for f in cfg.split)


def _data_details(loaded: Loaded, data: Dataset | None = None) -> str:
    cfg = loaded.fitted.config
    name = _data_name(loaded.training.get("input", "?"))
    n = f"{len(data.words['train']):,} training words, " if data is not None else ""
    return f"data: {name}, {n}seed {cfg.seed}, split {_split_text(cfg)}"


def counting_probs(data: Dataset, smoothing: float) -> np.ndarray:
    """The counting model of the training split: add-k smoothed P, (V, V) float32."""

    xs, ys = data.pairs("train")
    return np.asarray(smoothed_probs(count_matrix(jnp.asarray(xs), jnp.asarray(ys), data.vocab.size), smoothing))


# ---- weights ----------------------------------------------------------------------


def weights_figure(
    net_VxV: npt.ArrayLike,
    counted_VxV: npt.ArrayLike,
    chars: Sequence[str],
    title: str,
    details: str,
    names: tuple[str, str] = ("network", "counts"),
) -> Figure:
    """Three heat maps: the network's p(next | current), the counting model's, and network − counts.

    The first two share one colour scale (square root, 0 to the larger
    maximum); the difference is red where the network gives more, blue less.
    """
    P, Q = np.asarray(net_VxV, np.float64), np.asarray(counted_VxV, np.float64)
    V = P.shape[0]
    diff = P - Q
    fig = new_figure(19, 6.6)
    axes = fig.subplots(1, 3)
    norm = _colors().PowerNorm(0.5, vmin=0, vmax=float(max(P.max(), Q.max())))
    for ax, table, name in zip(axes[:2], (P, Q), names):
        image = ax.imshow(table, cmap="Blues", norm=norm, interpolation="nearest")
        ax.set_title(_escape(name), fontsize=11)
        _char_axes(ax, chars, V)
    fig.colorbar(image, ax=list(axes[:2]), shrink=0.7, label="p(next | current)  (colour: square root)")
    span = max(float(np.abs(diff).max()), 1e-12)
    image = axes[2].imshow(diff, cmap="RdBu_r", vmin=-span, vmax=span, interpolation="nearest")
    axes[2].set_title(f"difference: network − counts (largest |Δ| {span:.4f})", fontsize=11)
    _char_axes(axes[2], chars, V)
    fig.colorbar(image, ax=axes[2], shrink=0.7, label="Δ probability")
    _title(fig, title, details)
    return fig


def plot_weights(workdir: str, save: str, fmt: str, dpi: int = 100) -> None:
    """The neural bigram of workdir beside the smoothed counting model of its training split."""

    loaded = _load(workdir)
    model = loaded.fitted
    if model.model_def.counted or model.model_def.table is None:  # the trained table model: the neural bigram
        raise MakemoreError(
            f"{workdir}: holds {a_model(model.type)}; plot weights needs a trained neural bigram (--type bigram)"
        )
    data = training_data(loaded, workdir)
    k = model.config.smoothing
    net = np.asarray(jax.nn.softmax(model.params["W"], axis=-1))
    counted = counting_probs(data, k)
    chars = [shown(model.vocab.itos(i)) for i in range(model.vocab.size)]
    details = f"model: bigram in {_dir(workdir)}, step {loaded.step:,} (best by dev) · {_data_details(loaded, data)}"
    names = (f"neural bigram: softmax(W), step {loaded.step:,}", f"counting model: add-{k:g} smoothing, training split")
    fig = weights_figure(
        net, counted, chars, "The network learns the counts: p(next | current), learned and counted", details, names
    )
    save_figure(fig, save, fmt, dpi)


# ---- loss curves ------------------------------------------------------------------


@dataclass
class Curve:
    """One run's metrics: training loss per logged chunk, and train/dev NLL at evaluations."""

    label: str
    loss_steps: np.ndarray
    loss: np.ndarray
    eval_steps: np.ndarray
    train_nll: np.ndarray  # NaN where the split was empty
    dev_nll: np.ndarray


@dataclass
class Baseline:
    label: str
    value: float
    split: str  # "train" or "dev"


def _number(value: object) -> float:
    if not isinstance(value, (int, float, str)):  # None, or another JSON value
        return math.nan
    try:
        return float(value)  # the strings "inf" and "nan" included
    except ValueError:
        return math.nan


def curve_from_metrics(records: list[dict], label: str) -> Curve:
    """A Curve from the records of metrics.jsonl (see checkpoint.write_metrics)."""
    logged = [r for r in records if "step" in r and "loss" in r]
    evals = [r for r in records if "step" in r and ("train_nll" in r or "dev_nll" in r)]
    return Curve(
        label,
        np.array([r["step"] for r in logged], np.int64),
        np.array([_number(r["loss"]) for r in logged]),
        np.array([r["step"] for r in evals], np.int64),
        np.array([_number(r.get("train_nll")) for r in evals]),
        np.array([_number(r.get("dev_nll")) for r in evals]),
    )


def loss_figure(
    curves: Sequence[Curve], baselines: Sequence[Baseline], title: str, details: str, *, log_x: bool = False
) -> Figure:
    """Train and dev NLL against step for each run (one colour each), the training loss faint behind.

    Dev NLL is solid with dots, train NLL dashed; the baselines are
    horizontal grey lines (dev dotted, train dash-dot).
    """
    fig = new_figure(12, 7.5)
    ax = fig.add_subplot()
    palette = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9"]
    for n, curve in enumerate(curves):
        _plot_curve(ax, curve, palette[n % len(palette)])
    for base in baselines:
        style = ":" if base.split == "dev" else "-."
        ax.axhline(
            base.value,
            color="0.35" if base.split == "dev" else "0.6",
            linestyle=style,
            linewidth=1.3,
            label=_escape(f"{base.label}: {base.split} NLL {base.value:.4f}"),
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("step" + (" (log scale)" if log_x else ""))
    ax.set_ylabel("mean NLL per character (nats)")
    ax.grid(True, alpha=0.3)
    _loss_legend(
        fig,
        [(palette[n % len(palette)], _escape(c.label)) for n, c in enumerate(curves)],
        ax.lines[-len(baselines) :] if baselines else [],
    )
    _title(fig, title, details)
    return fig


def _plot_curve(ax: Axes, curve: Curve, color: str) -> None:
    """One run's lines in its colour: the training loss faint, dev NLL solid with dots, train NLL dashed.

    A line with nothing to show (no logged loss, or no finite NLL of a split) is left out.
    """
    label = _escape(curve.label)
    if len(curve.loss_steps):
        ax.plot(
            curve.loss_steps,
            curve.loss,
            color=color,
            alpha=0.3,
            linewidth=1,
            label=f"{label}: training loss (per log chunk)",
        )
    if np.isfinite(curve.dev_nll).any():
        ax.plot(
            curve.eval_steps,
            curve.dev_nll,
            color=color,
            linewidth=2,
            marker="o",
            markersize=3.5,
            label=f"{label}: dev NLL",
        )
    if np.isfinite(curve.train_nll).any():
        ax.plot(
            curve.eval_steps,
            curve.train_nll,
            color=color,
            linewidth=1.5,
            linestyle="--",
            label=f"{label}: train NLL",
        )


def _loss_legend(fig: Figure, runs: list[tuple[str, str]], baseline_lines: Sequence[Line2D]) -> None:
    """Below the chart, never over a curve: runs by colour | line styles | baselines, a column each."""
    from matplotlib.lines import Line2D

    columns = [
        [Line2D([], [], color=color, linewidth=2.5, label=label) for color, label in runs],
        [
            Line2D([], [], color="0.2", linewidth=2, marker="o", markersize=3.5, label="dev NLL (at evaluations)"),
            Line2D([], [], color="0.2", linewidth=1.5, linestyle="--", label="train NLL (at evaluations)"),
            Line2D([], [], color="0.2", alpha=0.3, linewidth=1, label="training loss (mean of each log chunk)"),
        ],
        list(baseline_lines),
    ]
    columns = [c for c in columns if c]
    rows = max(len(c) for c in columns)
    blank = Line2D([], [], alpha=0, label=" ")
    handles = [h for c in columns for h in c + [blank] * (rows - len(c))]  # the legend fills column by column
    fig.legend(handles=handles, fontsize=9, loc="outside lower center", ncols=len(columns))


def counting_baselines(loaded: Loaded, workdir: str) -> list[Baseline]:
    """The counting model (the run's add-k) on the run's training split: its train and dev NLL."""

    if not isinstance(loaded.fitted, Fitted):
        raise MakemoreError(f"{workdir}: holds a mixture, which has no counting baseline of its own")
    data = training_data(loaded, workdir)
    cfg = replace(loaded.fitted.config, type="counts")
    nll = split_nll(new_model(cfg, data), data, ["train", "dev"])
    label = f"counting model, add-{cfg.smoothing:g}"
    return [Baseline(label, v, s) for s, v in nll.items() if v is not None]


def plot_loss(
    workdirs: Sequence[str],
    save: str,
    fmt: str,
    dpi: int = 100,
    log_x: bool = False,
    warn: Callable[[str], None] = lambda message: None,
) -> None:
    """Training curves of one or more work directories on one chart, with counting baselines."""

    curves: list[Curve] = []
    parts: list[str] = []
    data_names: list[str] = []
    by_data: dict[tuple, list[str]] = {}  # one counting baseline per data set: input, seed, split, k
    loaded_of: dict[str, Loaded] = {}
    for workdir in workdirs:
        loaded = loaded_of[workdir] = _load(workdir)
        model = loaded.fitted
        if model.model_def.counted:
            raise MakemoreError(
                f"{workdir}: holds a counting model, which is not trained step by step (no {METRICS_FILE})"
            )
        records = read_metrics(workdir)
        if not os.path.exists(os.path.join(workdir, METRICS_FILE)) or not records:
            raise MakemoreError(f"{workdir}: no training curve ({METRICS_FILE} is missing or empty)")
        last = max(r.get("step", 0) for r in records)
        curves.append(curve_from_metrics(records, f"{workdir} ({model.type})"))
        parts.append(f"{model.type} in {_dir(workdir)} to step {last:,}")
        if _data_details(loaded) not in data_names:
            data_names.append(_data_details(loaded))
        cfg = model.config
        by_data.setdefault((loaded.training.get("input_sha256"), cfg.seed, tuple(cfg.split), cfg.smoothing), []).append(
            workdir
        )
    baselines = []
    for runs in by_data.values():
        try:
            bases = counting_baselines(loaded_of[runs[0]], runs[0])
        except MakemoreError as err:
            warn(f"no counting baseline: {err}")
            continue
        if len(by_data) > 1:  # say whose data each baseline is
            bases = [Baseline(f"{b.label} (data of {', '.join(runs)})", b.value, b.split) for b in bases]
        baselines.extend(bases)
    details = f"model: {'; '.join(parts)} · {' | '.join(data_names)}"
    fig = loss_figure(curves, baselines, "Training curves: mean NLL per character against step", details, log_x=log_x)
    save_figure(fig, save, fmt, dpi)


# ---- embeddings -------------------------------------------------------------------


def pca_2d(x_NxD: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The rows of x on their first two principal axes, and the share of variance of each.

    Returns (points (N, 2), explained (2,)). Each axis is signed so that its
    largest loading is positive, so the picture does not flip between runs.
    With D < 2 the missing coordinates are 0.
    """
    x = np.asarray(x_NxD, np.float64)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    axes = axes * np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])[:, None]
    points = np.zeros((x.shape[0], 2))
    points[:, : len(axes)] = centred @ axes.T
    var = s**2
    explained = np.zeros(2)
    explained[: len(axes)] = var[:2] / var.sum() if var.sum() > 0 else 0.0
    return points, explained


def embedding_table(model: AnyFitted) -> np.ndarray:
    """The (V, n_embd) character embedding of a trained model; MakemoreError if it has none.

    The mlp and wavenet have one more row, the blank before the start of a
    word, which is left out.
    """
    wte = model.params.get("wte") if isinstance(model.params, dict) else None
    if wte is None:
        raise MakemoreError(
            f"{a_model(model.type).capitalize()} has no character embedding (plot embeddings needs one with wte: "
            "mlp, rnn, gru, lstm, bow, transformer, wavenet)"
        )
    return np.asarray(wte)[: model.vocab.size]


def spread_labels(points_Nx2: npt.ArrayLike, min_dist: float = 0.05, steps: int = 200) -> np.ndarray:
    """Label positions near the points but at least about min_dist apart (in units of the plot's width and height).

    Labels closer than min_dist push each other apart, and each is pulled
    gently back to its point; returns (N, 2) positions in the points' units.
    """
    pts = np.asarray(points_Nx2, np.float64)
    lo, span = pts.min(axis=0), np.ptp(pts, axis=0)
    span = np.where(span > 0, span, 1.0)
    anchor = (pts - lo) / span
    pos = anchor.copy()
    n = len(pos)
    # ties (identical points) are broken by a fixed small offset, so the result is deterministic
    pos += 1e-3 * np.stack([np.cos(np.arange(n)), np.sin(np.arange(n))], axis=1)
    for _ in range(steps):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((delta**2).sum(-1)) + np.eye(n)
        overlap = np.clip(min_dist - dist, 0, None) * (1 - np.eye(n))
        if not overlap.any():
            break
        push = (delta / dist[..., None] * overlap[..., None] / 2).sum(axis=1)
        pos += push + 0.02 * (anchor - pos)
    return lo + pos * span


def embeddings_figure(
    points_Vx2: npt.ArrayLike, chars: Sequence[str], axis_labels: tuple[str, str], title: str, details: str
) -> Figure:
    """Each character as a labelled disc at its 2-D position; the boundary (first) in orange.

    Discs that would overlap are moved apart, with a thin line to the true
    position (a small black dot); any other disc is centred on its point.
    """
    pts = np.asarray(points_Vx2, np.float64)
    fig = new_figure(9.5, 8.8)
    ax = fig.add_subplot()
    labels = spread_labels(pts)
    moved = np.abs(labels - pts).max(axis=1) > 1e-3 * np.ptp(pts, axis=0).max()
    for (x, y), (lx, ly), far in zip(pts, labels, moved):
        if far:
            ax.plot([x, lx], [y, ly], color="0.4", linewidth=0.8, zorder=1)
    ax.scatter(pts[:, 0], pts[:, 1], s=8, color="black", zorder=1)  # hidden under a disc unless moved
    ax.scatter(labels[:, 0], labels[:, 1], s=0)  # the axes' limits take in the moved discs too
    for n, ((lx, ly), char) in enumerate(zip(labels, chars)):
        face = "#d95f02" if n == 0 else "#4c72b0"
        ax.text(
            lx,
            ly,
            char,
            ha="center",
            va="center",
            color="white",
            fontsize=11,
            fontweight="bold",
            parse_math=False,
            zorder=2,
            bbox={"boxstyle": "circle,pad=0.35", "facecolor": face, "edgecolor": "white"},
        )
    ax.margins(0.08)
    ax.set_xlabel(_escape(axis_labels[0]))
    ax.set_ylabel(_escape(axis_labels[1]))
    ax.grid(True, alpha=0.3)
    _title(fig, title, details)
    return fig


def plot_embeddings(workdir: str, save: str, fmt: str, dpi: int = 100) -> None:
    """The character embedding of the model in workdir: its two dimensions, or PCA to two."""
    loaded = _load(workdir)
    model = loaded.fitted
    try:
        table = embedding_table(model)
    except MakemoreError as err:
        raise MakemoreError(f"{workdir}: {err}") from None
    V, D = table.shape
    if D == 2:
        points, labels, how = table, ("embedding dimension 1", "embedding dimension 2"), "its 2 dimensions"
    else:
        points, share = pca_2d(table)
        labels = (
            f"principal component 1 ({100 * share[0]:.0f}% of variance)",
            f"principal component 2 ({100 * share[1]:.0f}% of variance)",
        )
        how = f"PCA of its {D} dimensions to 2"
    chars = [shown(model.vocab.itos(i)) for i in range(V)]
    details = f"model: {model.type} in {_dir(workdir)}, step {loaded.step:,} (best by dev) · {_data_details(loaded)}"
    fig = embeddings_figure(
        points, chars, labels, f"Character embeddings (wte), {how}; '.' is the start/end boundary", details
    )
    save_figure(fig, save, fmt, dpi)
