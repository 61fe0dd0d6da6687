"""`makemore plot`: every picture renders, says what it shows, and draws the numbers it was given."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import jax
import matplotlib  # the plot extra: CI installs it, so these tests never skip
import numpy as np
import pytest

from makemore_jax.cli import plot
from makemore_jax.cli.commands import main
from makemore_jax.data.words import Dataset, Vocabulary, bigram_pairs, read_words
from makemore_jax.errors import MakemoreError
from makemore_jax.models.counts import count_matrix, smoothed_probs
from makemore_jax.models.losses import mean_nll
from makemore_jax.seeding import seed_key
from makemore_jax.store import checkpoint

from conftest import NAMES, ROOT
from conftest import run_inprocess as run

TINY = ["--steps", "20", "--eval-every", "10", "--log-every", "10", "--num-samples", "0", "--quiet"]
MLP = ["--type", "mlp", "--n-embd", "3", "--n-embd2", "8", "--batch-size", "8", *TINY]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """300 names and two tiny models trained on them: a neural bigram and an mlp with 3-wide embeddings."""
    root = tmp_path_factory.mktemp("plot")
    names = root / "small.txt"
    with open(NAMES) as f:
        names.write_text("".join(f.readline() for _ in range(300)))
    for name, flags in (("bigram", TINY), ("mlp", MLP)):
        assert main(["train", "-i", str(names), "-o", str(root / name), *flags]) == 0
    return root


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved through plot.save_figure, with its size in inches and the dpi, in order."""
    figures = []
    save = plot.save_figure

    def keep(fig, path, fmt, dpi=100, **kw):
        figures.append((fig, tuple(fig.get_size_inches()), dpi))
        save(fig, path, fmt, dpi, **kw)

    monkeypatch.setattr(plot, "save_figure", keep)
    return figures


def png_size(path) -> tuple[int, int]:
    """Width and height from the PNG header (signature, then the IHDR chunk)."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def texts_of(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def plot_args(kind, small, out):
    if kind == "counts":
        return ["plot", "counts", "-i", str(small / "small.txt"), "--save", str(out)]
    if kind == "loss":
        return ["plot", "loss", "-o", str(small / "bigram"), "-o", str(small / "mlp"), "--log-x", "--save", str(out)]
    workdir = small / ("bigram" if kind == "weights" else "mlp")
    return ["plot", kind, "-o", str(workdir), "--save", str(out)]


# ---- every picture, as a file ------------------------------------------------------


@pytest.mark.parametrize("kind", plot.KINDS)
def test_every_plot_writes_a_png_of_the_figure_size(kind, small, tmp_path, capsys, drawn):
    out = tmp_path / "pictures" / f"{kind}.png"  # the folder is made
    code, stdout, err = run(capsys, *plot_args(kind, small, out), "--dpi", "40")
    assert code == 0, err
    assert stdout == f"wrote {out}\n"
    ((fig, (width, height), dpi),) = drawn
    assert dpi == 40
    assert png_size(out) == (round(width * 40), round(height * 40))
    assert os.path.getsize(out) > 2000
    # title (with a second line naming model, data and step) and axis labels
    title = fig._suptitle.get_text()
    assert "model:" in title and "data:" in title and "step" in title
    charts = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    assert charts and all(ax.get_xlabel() and ax.get_ylabel() for ax in charts)
    assert not [f for f in os.listdir(out.parent) if f != out.name], "a temporary file was left behind"


@pytest.mark.parametrize("name,flags", [("image", ["--format", "svg"]), ("image.svg", [])])
def test_svg_on_request_is_xml_of_the_figure_size(small, tmp_path, capsys, drawn, name, flags):
    out = tmp_path / name
    code, _, err = run(capsys, *plot_args("embeddings", small, out), *flags)
    assert code == 0, err
    ((fig, (width, height), _),) = drawn
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert float(root.get("width").removesuffix("pt")) == pytest.approx(width * 72)
    assert float(root.get("height").removesuffix("pt")) == pytest.approx(height * 72)
    # text stays text: every character of the vocabulary is a label in the file
    drawn_text = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
    vocab = checkpoint.load(str(small / "mlp")).fitted.vocab
    assert set(vocab.chars) <= drawn_text


def test_the_same_plot_twice_gives_the_same_bytes(small, tmp_path, capsys):
    for name in ("a.png", "b.png"):
        assert run(capsys, *plot_args("loss", small, tmp_path / name))[0] == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# ---- what each picture draws -------------------------------------------------------


def test_counts_cell_labels_are_the_pairs_and_their_counts(small):
    words = read_words(small / "small.txt")
    vocab = Vocabulary.from_words(words)
    N = np.asarray(count_matrix(*bigram_pairs(words, vocab), vocab.size))
    chars = [vocab.itos(i) for i in range(vocab.size)]
    fig = plot.counts_figure(N, chars, "title", "details")
    (ax,) = fig.axes
    pairs, counts = {}, {}
    for t in ax.texts:
        j, i = (int(round(v)) for v in t.get_position())
        (pairs if t.get_va() == "bottom" else counts)[i, j] = t.get_text()
    V = vocab.size
    assert len(ax.texts) == 2 * V * V
    assert pairs == {(i, j): chars[i] + chars[j] for i in range(V) for j in range(V)}
    assert counts == {(i, j): str(N[i, j]) for i in range(V) for j in range(V)}
    assert N.sum() == sum(len(w) + 1 for w in words)
    assert [t.get_text() for t in ax.get_xticklabels()] == chars
    assert np.array_equal(ax.images[0].get_array(), N)


def test_counts_of_a_large_vocabulary_keep_axes_but_drop_cell_labels():
    V = 120
    chars = ["."] + [chr(0x100 + k) for k in range(V - 1)]
    N = np.arange(V * V).reshape(V, V) % 7
    fig = plot.counts_figure(N, chars, "title", "details")
    ax = fig.axes[0]
    assert len(ax.texts) == 0
    assert ax.get_xlabel() and ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert 20 <= len(ticks) <= 40 and ticks == chars[:: V // len(ticks)][: len(ticks)]  # characters still name the rows
    assert len(fig.axes) == 2, "a colour bar says what the colours mean"
    assert np.array_equal(ax.images[0].get_array(), N)
    small_fig = plot.counts_figure(N[:27, :27], chars[:27], "title", "details")
    assert max(fig.get_size_inches()) < 2 * max(small_fig.get_size_inches()), "a big vocabulary gets small cells"


def test_counts_of_odd_characters_are_drawn_as_themselves(tmp_path, capsys, drawn):
    words = tmp_path / "odd.txt"
    words.write_text("a$b\nc d\n$$\n")
    code, _, err = run(capsys, "plot", "counts", "-i", str(words), "--save", str(tmp_path / "odd.svg"))
    assert code == 0, err
    ((fig, _, _),) = drawn
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "$b" in labels and "␣d" in labels and "$$" in labels  # no mathematics, a visible space


def test_weights_shows_the_network_the_counts_and_their_difference(small, tmp_path, capsys, drawn):
    assert run(capsys, *plot_args("weights", small, tmp_path / "w.png"))[0] == 0
    ((fig, _, _),) = drawn
    loaded = checkpoint.load(str(small / "bigram"))
    cfg = loaded.fitted.config
    data = Dataset.build(read_words(small / "small.txt"), seed_key(cfg.seed, "split"), cfg.split)
    net = np.asarray(jax.nn.softmax(loaded.fitted.params["W"], axis=-1))
    counted = np.asarray(smoothed_probs(count_matrix(*data.pairs("train"), data.vocab.size), cfg.smoothing))
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 3
    np.testing.assert_allclose(images[0], net, rtol=1e-6)
    np.testing.assert_allclose(images[1], counted, rtol=1e-6)
    np.testing.assert_allclose(images[2], net - counted, atol=1e-7)
    assert f"step {loaded.step}" in fig._suptitle.get_text()


def test_loss_draws_the_metrics_and_the_counting_baselines(small, tmp_path, capsys, drawn):
    assert run(capsys, *plot_args("loss", small, tmp_path / "l.png"))[0] == 0
    ((fig, _, _),) = drawn
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.lines}
    for name in ("bigram", "mlp"):
        records = checkpoint.read_metrics(str(small / name))
        evals = [r for r in records if "dev_nll" in r]
        dev = lines[f"{small / name} ({name}): dev NLL"]
        assert list(dev.get_xdata()) == [r["step"] for r in evals]
        np.testing.assert_allclose(dev.get_ydata(), [r["dev_nll"] for r in evals])
        loss = lines[f"{small / name} ({name}): training loss (per log chunk)"]
        np.testing.assert_allclose(loss.get_ydata(), [r["loss"] for r in records])
    # one pair of baselines: both runs trained on the same data, seed and split
    cfg = checkpoint.load(str(small / "bigram")).fitted.config
    data = Dataset.build(read_words(small / "small.txt"), seed_key(cfg.seed, "split"), cfg.split)
    P = smoothed_probs(count_matrix(*data.pairs("train"), data.vocab.size), cfg.smoothing)
    baselines = [line for label, line in lines.items() if label.startswith("counting model")]
    assert len(baselines) == 2
    for line, split in zip(baselines, ("train", "dev")):
        assert f"{split} NLL" in line.get_label()
        assert np.ptp(line.get_ydata()) == 0
        assert line.get_ydata()[0] == pytest.approx(float(mean_nll(P, *data.pairs(split))), abs=1e-5)


def test_loss_curves_read_inf_and_nan_and_records_between_evaluations():
    records = [
        {"step": 10, "loss": 3.0, "steps_per_s": 1.0},
        {"step": 20, "loss": "nan", "steps_per_s": 1.0, "train_nll": 2.5, "dev_nll": "inf"},
        {"step": 30, "loss": 2.0, "steps_per_s": 1.0, "train_nll": 2.25},
    ]
    curve = plot.curve_from_metrics(records, "run")
    assert list(curve.loss_steps) == [10, 20, 30] and np.isnan(curve.loss[1])
    assert list(curve.eval_steps) == [20, 30]
    assert curve.train_nll.tolist() == [2.5, 2.25]
    assert curve.dev_nll[0] == np.inf and np.isnan(curve.dev_nll[1])


def test_loss_without_the_training_input_still_draws_and_says_why(small, tmp_path, capsys):
    moved = tmp_path / "moved.txt"
    shutil.copy(small / "small.txt", moved)
    work = tmp_path / "run"
    assert main(["train", "-i", str(moved), "-o", str(work), *TINY]) == 0
    moved.unlink()
    code, out, err = run(capsys, "plot", "loss", "-o", str(work), "--save", str(tmp_path / "l.png"))
    assert code == 0 and "no counting baseline" in err and "is gone" in err
    assert png_size(tmp_path / "l.png")[0] > 0


def test_embeddings_are_labelled_by_character(small, tmp_path, capsys, drawn):
    assert run(capsys, *plot_args("embeddings", small, tmp_path / "e.png"))[0] == 0
    ((fig, _, _),) = drawn
    ax = fig.axes[0]
    model = checkpoint.load(str(small / "mlp")).fitted
    chars = [model.vocab.itos(i) for i in range(model.vocab.size)]
    assert [t.get_text() for t in ax.texts] == chars
    assert "principal component 1" in ax.get_xlabel() and "PCA of its 3 dimensions" in fig._suptitle.get_text()
    # each dot is the character's embedding, on the first two principal axes
    points, _ = plot.pca_2d(np.asarray(model.params["wte"])[: model.vocab.size])
    np.testing.assert_allclose(ax.collections[0].get_offsets(), points, rtol=1e-5, atol=1e-6)


def test_two_dimensional_embeddings_are_drawn_as_they_are():
    pts = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    fig = plot.embeddings_figure(pts, [".", "a", "b"], ("embedding dimension 1", "embedding dimension 2"), "t", "d")
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets(), pts)


def test_pca_finds_the_axes_of_largest_variance():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(200, 2)) * [5.0, 1.0]  # most variance along the first hidden axis
    basis = np.linalg.qr(rng.normal(size=(6, 6)))[0][:, :2]  # an orthonormal 2-D plane in 6-D
    x = t @ basis.T + 10.0 + 1e-3 * rng.normal(size=(200, 6))
    points, explained = plot.pca_2d(x)
    eigvals, eigvecs = np.linalg.eigh(np.cov(x.T))  # ascending
    top = eigvecs[:, ::-1][:, :2]
    projected = (x - x.mean(axis=0)) @ top
    for k in range(2):
        sign = np.sign(points[:, k] @ projected[:, k])
        np.testing.assert_allclose(points[:, k], sign * projected[:, k], atol=1e-8)
        assert abs(np.corrcoef(points[:, k], t[:, k])[0, 1]) > 0.99  # the hidden axes, found again
    np.testing.assert_allclose(explained, eigvals[::-1][:2] / eigvals.sum(), rtol=1e-6)
    again, _ = plot.pca_2d(x[::-1])
    np.testing.assert_allclose(again[::-1], points, atol=1e-9)  # same signs whatever the row order


def test_overlapping_labels_are_moved_apart_and_the_others_stay():
    pts = np.array([[0.0, 0.0], [0.0, 0.0], [0.001, 0.0], [1.0, 1.0], [0.0, 1.0]])
    labels = plot.spread_labels(pts, min_dist=0.05)
    gaps = np.linalg.norm(labels[:3, None] - labels[None, :3], axis=-1)[np.triu_indices(3, 1)]
    assert gaps.min() > 0.04
    np.testing.assert_allclose(labels[3:], pts[3:], atol=1e-3)


# ---- flags and mistakes --------------------------------------------------------------


def test_output_path_and_format():
    assert plot.output_path(None, None, "loss") == ("loss.png", "png")
    assert plot.output_path(None, "svg", "counts") == ("counts.svg", "svg")
    assert plot.output_path("a/b.SVG", None, "loss") == ("a/b.SVG", "svg")
    assert plot.output_path("picture", "png", "loss") == ("picture", "png")
    for save, fmt, message in [("x.png", "svg", "contradicts"), ("x.jpg", None, "'.jpg'"), ("x", None, "no suffix")]:
        with pytest.raises(MakemoreError, match=message):
            plot.output_path(save, fmt, "loss")


def test_bad_input_is_one_line_and_exit_2(small, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_metrics = tmp_path / "no-metrics"
    shutil.copytree(small / "mlp", no_metrics)
    (no_metrics / "metrics.jsonl").unlink()
    counts = tmp_path / "counts"
    assert (
        main(["train", "--type", "counts", "-i", str(small / "small.txt"), "-o", str(counts), "--num-samples", "0"])
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "never.png"
    cases = [
        (["weights", "-o", str(tmp_path / "nowhere")], "no such work directory"),
        (["embeddings", "-o", str(empty)], "model.json is missing"),
        (["embeddings", "-o", str(small / "bigram")], "has no character embedding"),
        (["weights", "-o", str(small / "mlp")], "needs a trained neural bigram"),
        (["loss", "-o", str(small / "bigram"), "-o", str(no_metrics)], "metrics.jsonl is missing"),
        (["loss", "-o", str(counts)], "not trained step by step"),
        (["counts", "-i", str(tmp_path / "missing.txt")], "no such file"),
        (["counts", "-i", str(small / "small.txt"), "--save", str(tmp_path / "x.jpg")], "'.jpg'"),
        (["counts", "--save", str(out), "--format", "svg"], "contradicts"),
        (["loss", "--dpi", "0"], "--dpi: must be an integer >= 1"),
        (["pie"], "invalid choice: 'pie'"),
    ]
    for args, message in cases:
        code, stdout, err = run(capsys, "plot", *args, *([] if "--save" in args else ["--save", str(out)]))
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (args, err)
        assert "Traceback" not in err and stdout == ""
    assert not out.exists()


def test_without_matplotlib_one_line_says_how_to_install_it(small, tmp_path, capsys, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    for args in (["counts"], ["loss", "-o", str(small / "bigram")]):
        code, out, err = run(capsys, "plot", *args, "--save", str(tmp_path / "x.png"))
        assert code == 2
        assert err == "makemore plot: error: matplotlib is needed: pip install 'makemore-jax[plot]'\n"
    assert not (tmp_path / "x.png").exists()


CORE_WITHOUT_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # as if it were not installed
import makemore_jax.cli.plot, makemore_jax.cli.progress
from makemore_jax.cli.commands import build_parser, main
build_parser()
code = main(["eval", "-o", sys.argv[1], "-i", sys.argv[2], "--per-word", "2"])
print("exit", code, "matplotlib loaded:", any(m.startswith("matplotlib.") for m in sys.modules))
"""


def test_the_core_works_without_matplotlib(small):
    proc = subprocess.run(
        [sys.executable, "-c", CORE_WITHOUT_MATPLOTLIB, str(small / "mlp"), str(small / "small.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.stdout.strip().endswith("exit 0 matplotlib loaded: False"), proc.stderr
    assert "2 most likely words" in proc.stdout


def test_help_lists_the_plot_kinds(capsys):
    code, out, _ = run(capsys, "plot", "--help")
    assert code == 0 and all(kind in out for kind in plot.KINDS)
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "plot" in out
