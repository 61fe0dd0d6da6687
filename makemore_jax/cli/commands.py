"""The `makemore` command: train, tune, sample, eval, plot.

Mistakes a user can make end as one line on stderr and exit status 2; nothing
in the work directory is written before the settings and the input have been
checked.

The package's modules are imported inside the functions that use them (the
CLI's lazy start): ``makemore --help`` and a mistyped flag answer at once,
before JAX loads.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..errors import MakemoreError, counted
from .export import add_export_parser

if TYPE_CHECKING:  # the package's modules are imported where they are used (see above)
    import numpy as np

    from ..api import Model
    from ..data.words import Dataset, WordArray
    from ..training.config import TrainConfig
    from ..training.fitted import FittedModel, TrainedModel
    from ..training.parallel import DataParallel
    from ..training.trainer import Record, TrainState


AddWorkdir = Callable[[argparse.ArgumentParser], None]  # adds -o/--work-dir to a command's parser
Number = TypeVar("Number", int, float)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
DEFAULT_WORKDIR = "out"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line, not usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[_Parser]  # what build_parser's add_subparsers gives


def _number(kind: Callable[[str], Number], check: Callable[[Number], bool], what: str) -> Callable[[str], Number]:
    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what
    return parse


non_negative_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
seed_int = _number(int, lambda v: 0 <= v <= 2**32 - 1, "an integer in 0..4294967295")
open_unit_float = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
unit_float = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def split_fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values) or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"expected three numbers >= 0 like 80,10,10 (train > 0), got {text!r}")
    return values


# TrainConfig fields set by flags of the same name; None means not given, so the
# model type's default applies (and --resume can tell what the user asked for).
TRAIN_SETTINGS = (
    "seed",
    "split",
    "smoothing",
    "optimizer",
    "lr",
    "weight_decay",
    "l2",
    "steps",
    "batch_size",
    "warmup_steps",
    "lr_schedule",
    "min_lr",
    "grad_clip",
    "dropout",
    "eval_every",
    "eval_words",
    "log_every",
    "n_layer",
    "n_head",
    "n_embd",
    "n_embd2",
    "block_size",
    "order",
    "smoothing_method",
    "discount",
    "discount_scale",
    "init_scale",
    "pack",
    "memory",
)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(
        prog="makemore",
        description="Character-level language models in JAX: train on a list of words, sample new ones.",
    )
    parser.add_argument("--version", action="version", version=f"makemore-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,tune,mix,sample,export,eval,plot}")

    def workdir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-o",
            "--work-dir",
            metavar="WORKDIR",
            default=DEFAULT_WORKDIR,
            help=f"work directory (default: {DEFAULT_WORKDIR})",
        )

    _add_train_parser(sub, workdir)
    _add_tune_parser(sub, workdir)
    _add_mix_parser(sub, workdir)
    _add_sample_parser(sub, workdir)
    _add_eval_parser(sub, workdir)
    _add_plot_parser(sub, workdir)
    add_export_parser(sub, workdir)
    _name_command_parsers(parser)
    return parser


def _name_command_parsers(parser: argparse.ArgumentParser) -> None:
    """Every (sub)subcommand's parser records itself as args.command_parser (the innermost given wins),
    so that an argument it does not know is reported with its own --help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command_parser in action.choices.values():
                command_parser.set_defaults(command_parser=command_parser)
                _name_command_parsers(command_parser)


def _add_train_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    from ..models import MODEL_TYPES, ngram
    from ..training.config import OPTIMIZERS, SCHEDULES

    t = sub.add_parser(
        "train",
        help="train a model and save it to the work directory",
        description="Train a model, report train/dev/test NLL, save it, print samples. Defaults depend on --type: "
        "the bigram follows the lecture (full-batch SGD, lr 50, λ 0.01, 500 steps); the other neural models follow "
        "the PyTorch makemore (AdamW, lr 5e-4, weight decay 0.01, batch 32, 10,000 steps).",
    )
    t.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        default=None,
        help="words, one per line, UTF-8 (default: the bundled names.txt)",
    )
    workdir(t)
    t.add_argument("--type", choices=MODEL_TYPES, help="model type (default: bigram)")
    t.add_argument("--resume", action="store_true", help="continue the run saved in WORKDIR exactly where it stopped")
    t.add_argument("--seed", type=seed_int, help="fixes split, init, batch order and samples (default 0)")
    t.add_argument(
        "--split", type=split_fractions, metavar="TRAIN,DEV,TEST", help="proportions of the words (default 80,10,10)"
    )
    smoothing = t.add_mutually_exclusive_group()
    smoothing.add_argument(
        "--smoothing",
        type=non_negative_float,
        metavar="K",
        help="add-k smoothing of the counting and ngram models (default 1)",
    )
    smoothing.add_argument(
        "--kn", dest="smoothing_method", action="store_const", const="kn", help="ngram: interpolated Kneser-Ney"
    )
    smoothing.add_argument(
        "--modified-kn",
        dest="smoothing_method",
        action="store_const",
        const="modified-kn",
        help="ngram: modified Kneser-Ney, three discounts per order (the default without --smoothing)",
    )
    t.add_argument(
        "--order",
        type=positive_int,
        metavar="N",
        help=f"ngram: characters per n-gram, the context is N-1 of them (default 5, at most {ngram.MAX_ORDER})",
    )
    t.add_argument(
        "--discount",
        type=open_unit_float,
        metavar="D",
        help="with --kn: one discount at every order (default: n1/(n1+2n2) of each order)",
    )
    t.add_argument(
        "--discount-scale",
        type=positive_float,
        metavar="S",
        help="with --kn or --modified-kn: factor on the count-of-counts discounts (default 1)",
    )
    t.add_argument(
        "--memory",
        metavar="SIZE",
        help="ngram: what counting may hold in memory before it spills sorted runs to a "
        "temporary directory (TMPDIR), e.g. 512M, 2G, 80%% of physical memory, or bytes; at least 1M (default 25%%)",
    )
    t.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd (bigram default) or adamw (default for the rest)")
    t.add_argument("--lr", "--learning-rate", type=non_negative_float, help="learning rate (bigram 50, others 5e-4)")
    t.add_argument("--weight-decay", type=non_negative_float, help="AdamW weight decay (default 0.01)")
    t.add_argument(
        "--l2", type=non_negative_float, metavar="LAMBDA", help="penalty λ·mean(param²) (bigram 0.01, others 0)"
    )
    t.add_argument("--steps", "--max-steps", type=non_negative_int, help="optimizer steps (bigram 500, others 10,000)")
    t.add_argument(
        "--batch-size",
        "-b",
        type=non_negative_int,
        help="words per step, drawn with replacement; 0 = the whole training split (bigram 0, others 32); "
        "refused if a step cannot fit the device's memory",
    )
    t.add_argument("--warmup-steps", type=non_negative_int, help="linear learning-rate warmup (default 0)")
    t.add_argument("--lr-schedule", choices=SCHEDULES, help="constant (default) or cosine decay to --min-lr")
    t.add_argument("--min-lr", type=non_negative_float, help="where cosine decay ends (default 0)")
    t.add_argument("--grad-clip", type=non_negative_float, help="clip gradients to this global norm, 0 = off (default)")
    t.add_argument(
        "--dropout", type=non_negative_float, help="training-time dropout rate, for the transformer (default 0)"
    )
    t.add_argument(
        "--pack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="transformer: pack each batch's words end to end instead of padding each to the block size; "
        "the same loss, less work (default on; --no-pack trains on padded rows)",
    )
    t.add_argument(
        "--init-scale",
        type=non_negative_float,
        metavar="S",
        help="bigram: W starts as S times N(0, 1) noise; 1 = the lecture's (default), "
        "0 = zeros, as the PyTorch makemore",
    )
    t.add_argument("--eval-every", type=positive_int, help="steps between dev evaluations and checkpoints")
    t.add_argument(
        "--eval-words",
        type=non_negative_int,
        metavar="N",
        help="words of each split scored at each evaluation during training, a fixed seeded sample; "
        "0 = whole splits (default 40,000); the dev and test figures at the end are of the whole splits",
    )
    t.add_argument(
        "--log-every",
        type=positive_int,
        help="steps between progress lines; when given, plain lines even on a terminal",
    )
    t.add_argument("--n-layer", type=positive_int, help="layers (default 4)")
    t.add_argument("--n-head", type=positive_int, help="attention heads (default 4)")
    t.add_argument("--n-embd", type=positive_int, help="embedding size (default 64)")
    t.add_argument("--n-embd2", type=positive_int, help="hidden size (default 64)")
    t.add_argument(
        "--block-size",
        type=non_negative_int,
        help="longest sequence, 0 = longest word + 1 (default); more only lengthens samples and costs memory",
    )
    t.add_argument(
        "--num-samples",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="names to print after training (default 10)",
    )
    t.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_parallel_flags(t)
    t.set_defaults(run=cmd_train)


def _add_sample_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    s = sub.add_parser(
        "sample",
        help="print names sampled from a trained model",
        description="Print names sampled from the model in WORKDIR; the same seed gives the same names.",
    )
    workdir(s)
    s.add_argument(
        "-n",
        "--num-samples",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="how many names, printed as they are drawn (default 20)",
    )
    s.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default 0)")
    s.add_argument(
        "--temperature",
        "-t",
        type=non_negative_float,
        default=1.0,
        metavar="T",
        help="0 = greedy, 1 = the model's distribution (default 1)",
    )
    s.add_argument(
        "--top-k",
        type=non_negative_int,
        default=0,
        metavar="K",
        help="draw only from the K most likely characters, 0 = all (default)",
    )
    s.add_argument(
        "--top-p",
        type=unit_float,
        default=1.0,
        metavar="P",
        help="draw only from the most likely characters whose probabilities add up to P, 1 = all (default)",
    )
    s.add_argument(
        "--prefix", default="", metavar="TEXT", help="names that start with TEXT, drawn from the model given TEXT"
    )
    s.add_argument(
        "--min-len",
        type=non_negative_int,
        default=0,
        metavar="L",
        help="no name shorter than L characters: the end cannot be drawn before (default 0)",
    )
    s.add_argument(
        "--max-len",
        type=positive_int,
        default=None,
        metavar="L",
        help="cut names at L characters, at most 10,000 (default: the longest the model allows)",
    )
    s.add_argument(
        "--unique",
        action="store_true",
        help="no name twice: the names of the plain sample that qualify, in order (a bounded walk)",
    )
    s.add_argument(
        "--new-only",
        action="store_true",
        help="no name of the training input, of any split: the plain sample's names that qualify, in order",
    )
    s.add_argument(
        "--no-report", action="store_true", help="do not report how many names are in the training or test set"
    )
    s.add_argument(
        "--log-prob",
        action="store_true",
        help="print before each name its log-probability under the model (end included; temperature 1, no top-k)",
    )
    _add_device_flag(s)
    s.set_defaults(run=cmd_sample)


def _add_eval_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    e = sub.add_parser(
        "eval",
        help="mean NLL of a word list under a trained model",
        description="Mean negative log-likelihood per character (end included) of the words in FILE.",
    )
    e.add_argument(
        "-i", "--input-file", metavar="FILE", default=None, help="words to score (default: the bundled names.txt)"
    )
    workdir(e)
    e.add_argument(
        "--per-word",
        type=positive_int,
        nargs="?",
        const=10,
        default=None,
        metavar="N",
        help="also list the N most and N least likely words, by NLL per character (N default 10)",
    )
    _add_device_flag(e)
    e.set_defaults(run=cmd_eval)


def _add_device_flag(p: argparse.ArgumentParser) -> None:
    from ..training.parallel import PLATFORMS

    p.add_argument("--device", choices=PLATFORMS, help="kind of device to compute on (default: JAX's default backend)")


def _use_device(platform: str | None) -> None:
    """Make the first device of this kind JAX's default for the command (MakemoreError if there is none)."""
    if platform is None:
        return
    import jax

    from ..training import parallel as distributed

    jax.config.update("jax_default_device", distributed.select_devices(platform, 1)[0])


def _add_parallel_flags(t: argparse.ArgumentParser) -> None:
    from ..training.parallel import PLATFORMS

    g = t.add_argument_group(
        "devices and hosts",
        "Data-parallel training: the batch is split over the devices, the gradients summed by the compiler.",
    )
    g.add_argument(
        "--devices",
        type=positive_int,
        metavar="N",
        help="devices per process to train on (default: all of them; 1 = the one-device program)",
    )
    g.add_argument("--device", choices=PLATFORMS, help="kind of device (default: JAX's default backend)")
    g.add_argument(
        "--shard-params",
        action="store_true",
        help="split each weight matrix over the devices instead of copying it to each",
    )
    g.add_argument(
        "--coordinator", metavar="HOST:PORT", help="multi-host: the address of process 0, the same for every process"
    )
    g.add_argument(
        "--num-processes", type=positive_int, metavar="P", help="multi-host: how many processes (hosts) take part"
    )
    g.add_argument(
        "--process-id",
        type=non_negative_int,
        metavar="I",
        help="multi-host: this process, 0..P-1; process 0 saves the model",
    )


def _add_tune_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    from ..models.ngram import MAX_ORDER
    from ..training.tune import DEFAULT_MAX_ORDER

    u = sub.add_parser(
        "tune",
        help="choose an n-gram model's order and smoothing on the dev split, save it",
        description="Count the training split once, score every order 1..N (--max-order) with add-k, "
        "Kneser-Ney and modified Kneser-Ney smoothing over a grid on the dev split, print the table, "
        "evaluate the best on test once and save it.",
    )
    u.add_argument("--type", choices=("ngram",), required=True, help="the model family to tune (ngram)")
    u.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        default=None,
        help="words, one per line, UTF-8 (default: the bundled names.txt)",
    )
    workdir(u)
    u.add_argument("--seed", type=seed_int, help="fixes the split and the printed samples (default 0)")
    u.add_argument(
        "--split", type=split_fractions, metavar="TRAIN,DEV,TEST", help="proportions of the words (default 80,10,10)"
    )
    u.add_argument(
        "--max-order",
        type=positive_int,
        default=DEFAULT_MAX_ORDER,
        metavar="N",
        help=f"try orders 1..N (default {DEFAULT_MAX_ORDER}, at most {MAX_ORDER})",
    )
    u.add_argument(
        "--memory",
        metavar="SIZE",
        help="what counting may hold in memory before it spills sorted runs to a "
        "temporary directory (TMPDIR), e.g. 512M, 2G, 80%% of physical memory, or bytes; at least 1M (default 25%%)",
    )
    u.add_argument(
        "--num-samples",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="names to print from the chosen model (default 10)",
    )
    _add_device_flag(u)
    u.set_defaults(run=cmd_tune)


def _add_mix_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    m = sub.add_parser(
        "mix",
        help="mix trained models, weights fitted on the dev split, and save the mixture",
        description="p(next) = sum of w_k p_k(next) over the models in MODEL_DIR...; the weights are fitted on the dev "
        "split of the data the models were trained on (same data, seed and split for all). Prints every split's NLL "
        "for each model and the mixture, saves the mixture to WORKDIR (sample and eval use it) and prints samples.",
    )
    m.add_argument("models", nargs="+", metavar="MODEL_DIR", help="work directories of trained models (at least two)")
    workdir(m)
    m.add_argument("--seed", type=seed_int, default=0, help="seed of the printed samples (default 0)")
    m.add_argument("--num-samples", type=non_negative_int, default=10, metavar="N", help="names to print (default 10)")
    _add_device_flag(m)
    m.set_defaults(run=cmd_mix)


def _add_plot_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a picture: counts, weights, loss or embeddings (needs matplotlib)",
        description="Draw a picture to a PNG (default) or SVG file. "
        "Needs matplotlib: pip install 'makemore-jax[plot]'.",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{counts,weights,loss,embeddings}")

    def image(q, kind):
        q.add_argument("--save", metavar="FILE", help=f"the image, .png or .svg (default: {kind}.png here)")
        q.add_argument("--format", choices=("png", "svg"), help="png or svg (default: the suffix of --save, else png)")
        q.add_argument("--dpi", type=positive_int, default=100, help="pixels per inch of a PNG (default 100)")

    c = kinds.add_parser(
        "counts",
        help="the bigram count matrix of a word file, each cell labelled",
        description="The V×V matrix of bigram counts of all the words in FILE as a heat map, "
        "each cell labelled with its pair and count.",
    )
    c.add_argument(
        "-i", "--input-file", metavar="FILE", default=None, help="words, one per line (default: the bundled names.txt)"
    )
    c.add_argument(
        "--labels",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="label each cell with its pair and count (default: for vocabularies of at most 32)",
    )
    image(c, "counts")
    w = kinds.add_parser(
        "weights",
        help="a trained neural bigram's probabilities beside the counting model's",
        description="softmax(W) of the neural bigram in WORKDIR, the add-k counting model of its training split, "
        "and their difference.",
    )
    workdir(w)
    image(w, "weights")
    lo = kinds.add_parser(
        "loss",
        help="train and dev NLL against step, from the metrics of one or more runs",
        description="Train and dev NLL against step from WORKDIR/metrics.jsonl, "
        "with the counting model's NLL as horizontal lines. Repeat -o to compare runs.",
    )
    lo.add_argument(
        "-o",
        "--work-dir",
        metavar="WORKDIR",
        action="append",
        dest="work_dirs",
        help=f"a work directory; repeat to put several runs on one chart (default: {DEFAULT_WORKDIR})",
    )
    lo.add_argument("--log-x", action="store_true", help="logarithmic step axis")
    image(lo, "loss")
    e = kinds.add_parser(
        "embeddings",
        help="a model's character embedding in 2-D, each point labelled",
        description="The character embedding (wte) of the model in WORKDIR: its two dimensions when n_embd = 2, "
        "else its first two principal components.",
    )
    workdir(e)
    image(e, "embeddings")
    p.set_defaults(run=cmd_plot)


def _input_path(args: argparse.Namespace) -> str:
    from ..data.words import bundled_names_path

    return args.input_file if args.input_file is not None else bundled_names_path()


def _read_input(path: str) -> tuple[WordArray, str]:
    """The words of a file (a data.words.WordArray: arrays, not a str a word) and the SHA-256 of its bytes."""
    from ..data.words import parse_word_array, read_bytes

    raw = read_bytes(path)
    return parse_word_array(raw, source=path), hashlib.sha256(raw).hexdigest()


def _recorded_input(training: dict) -> str:
    """The input file a run recorded (for --resume without -i); MakemoreError if none is recorded or it is gone."""
    path = training.get("input")
    if not isinstance(path, str) or not path:
        raise MakemoreError("--resume: the run does not record its input file: give it with -i")
    if not os.path.isfile(path):
        raise MakemoreError(f"--resume: the run's input {path} is gone: give the words it was trained on with -i")
    return path


def _load_data(
    path: str,
    cfg: TrainConfig,
    parallel: DataParallel | None,
    expect_sha256: str | None = None,
    recorded: bool = False,
) -> tuple[Dataset, str, int]:
    """(Dataset, SHA-256 of the input, number of words) for a run of cfg; the batch checked against the devices.

    One process reads the whole file. In a multi-host run each process reads
    and parses only its part (data.hosts), and every process hashes the file.
    expect_sha256 (a resumed run's input) is checked before the words are split;
    recorded: path is the one the run recorded (no -i given), which the message says.
    """
    import jax

    from ..data.words import Dataset
    from ..models import get_model
    from ..seeding import seed_key

    if parallel is not None and not get_model(cfg.type).counted:
        parallel.check_batch(cfg.batch_size)

    def check(digest: str) -> None:
        if expect_sha256 is not None and digest != expect_sha256:
            if recorded:  # the path the run recorded, whose words are no longer those it was trained on
                raise MakemoreError(
                    f"--resume: the run's input {path} changed since training: give the words it was trained on with -i"
                )
            raise MakemoreError(f"--resume: {path} is not the input this run was trained on")

    if parallel is not None and jax.process_count() > 1:
        from ..data import hosts as hostdata

        digest = hostdata.file_sha256(path)
        check(digest)
        data = hostdata.build(path, seed_key(cfg.seed, "split"), cfg.split, len(parallel.local_devices()))
        return data, digest, sum(data.sizes.values())
    from .progress import Status

    with Status().phase(f"reading {path}"):
        words, digest = _read_input(path)
        check(digest)
        return Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split), digest, len(words)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"


def _nll_line(metrics: dict) -> str:
    """'train NLL 2.4611 (ppl 11.72)  dev NLL ...  test NLL ...'.

    Each split's NLL and perplexity (with_perplexities').
    """
    parts = []
    for s in ("train", "dev", "test"):
        ppl = metrics[f"{s}_ppl"]
        parts.append(f"{s} NLL {_fmt(metrics[f'{s}_nll'])}" + ("" if ppl is None else f" (ppl {ppl:.2f})"))
    return "  ".join(parts)


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by the rules of the model type (its ModelDef's)."""
    from ..models import get_model, option_owner

    given = {name: getattr(args, name) for name in TRAIN_SETTINGS if getattr(args, name) is not None}
    model_def = get_model(args.type or "bigram")
    foreign: dict[str, list[str]] = {}  # flags of another model type: owner -> flags
    for field in given:
        owner = option_owner(field)
        if owner is not None and owner[1] is not None and owner[0] != model_def.name:
            foreign.setdefault(owner[0], []).append(owner[1])
    for model_type, flags in foreign.items():
        raise MakemoreError(f"{', '.join(flags)}: only for --type {model_type}")
    return model_def.resolve(given)


def _resume_state(args: argparse.Namespace, given: dict[str, Any]) -> tuple[TrainedModel, TrainState, dict]:
    """Model, state and settings of the run in WORKDIR, refusing flags that contradict it."""
    from dataclasses import replace

    from ..models import a_model, get_model
    from ..store import checkpoint
    from ..training.fitted import TrainedModel
    from ..training.steps import make_optimizer
    from ..training.trainer import TrainState

    if args.type is not None and get_model(args.type).counted:
        raise MakemoreError(f"--resume: {a_model(args.type)} is counted in one pass; there is nothing to resume")
    _refuse_resuming_counted(args.work_dir)
    loaded = checkpoint.load(args.work_dir, "last")
    model = loaded.model
    if not isinstance(model, TrainedModel):  # a mixture's directory holds model.json only, never last.json
        raise MakemoreError(f"--resume: {args.work_dir} holds a mixture; there is nothing to resume")
    if args.type is not None and args.type != model.type:
        raise MakemoreError(f"--resume: {args.work_dir} holds {a_model(model.type)}, not {args.type}")
    old = model.config.to_json()
    for field, value in given.items():
        value = list(value) if isinstance(value, tuple) else value
        if field != "steps" and old[field] != value:
            raise MakemoreError(
                f"--resume: --{field.replace('_', '-')} {value} differs from the saved run's {old[field]}"
            )
    if "steps" in given:
        model.config = replace(model.config, steps=given["steps"])
    optimizer = make_optimizer(model.config)
    path = os.path.join(args.work_dir, "last.json")
    opt_state = checkpoint.restore_opt_state(loaded, optimizer.init(model.params), path)
    history = [r for r in checkpoint.read_metrics(args.work_dir) if r.get("step", 0) <= loaded.step]
    return model, TrainState(model.params, opt_state, loaded.step, loaded.best_dev, history), loaded.training


def _refuse_resuming_counted(work_dir: str) -> None:
    """A work directory without last.json whose model is counted: say so, not that last.json is missing."""
    from ..models import a_model
    from ..store import checkpoint

    if os.path.exists(os.path.join(work_dir, "last.json")) or not os.path.exists(os.path.join(work_dir, "model.json")):
        return
    try:
        held = checkpoint.load(work_dir, "model").model
    except MakemoreError:
        return  # loading "last" below says what is wrong
    if held.model_def.counted:
        raise MakemoreError(
            f"--resume: {work_dir} holds {a_model(held.type)}, which is counted in one pass: "
            "there is nothing to resume (train it again without --resume)"
        )


def _parallel(args: argparse.Namespace) -> DataParallel | None:
    """Join a multi-host run if asked, choose the devices; None for one device (the plain program)."""
    import jax

    from ..training import parallel as distributed

    multi = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in multi):
        if None in multi:
            raise MakemoreError("--coordinator, --num-processes and --process-id go together")
        distributed.initialize(*multi)
    devices = distributed.select_devices(args.device, args.devices)
    if args.device is not None:  # everything outside the training steps (evaluation, sampling) runs there too
        jax.config.update("jax_default_device", next(d for d in devices if d.process_index == jax.process_index()))
    if len(devices) == 1:
        return None
    return distributed.DataParallel.over(devices, args.shard_params)


def _devices_line(parallel: DataParallel | None) -> str:
    """Where this run computes, e.g. ``device: gpu (NVIDIA H200)`` or ``devices: 4 × cpu, data-parallel``."""
    import jax.numpy as jnp

    if parallel is None:
        (device,) = jnp.zeros(()).devices()  # where an uncommitted array lands: the default device
        kind = f" ({device.device_kind})" if device.device_kind != device.platform else ""
        return f"device: {device.platform}{kind}"
    devices = list(parallel.mesh.devices.flat)
    kinds = sorted({d.device_kind for d in devices} - {devices[0].platform})
    kind = f" ({', '.join(kinds)})" if kinds else ""
    hosts = len({d.process_index for d in devices})
    where = f" on {hosts} hosts" if hosts > 1 else ""
    return f"devices: {len(devices)} × {devices[0].platform}{kind}{where}, data-parallel"


def _process_index() -> int:
    import jax

    return jax.process_index()


def _is_writer() -> bool:
    return _process_index() == 0


def _hold_workdir(workdir: str) -> None:
    """Lock workdir for this command (one writer at a time), drop a killed run's temporary
    files, and check that it can be written, all before any work is done."""
    from ..store import checkpoint, lock

    lock.hold(workdir)
    checkpoint.prepare_workdir(workdir)


def _resume_command(args: argparse.Namespace) -> str:
    import shlex

    given_input = f" -i {shlex.quote(args.input_file)}" if args.input_file is not None else ""
    return f"makemore train -o {shlex.quote(args.work_dir)} --resume{given_input}"


def cmd_train(args: argparse.Namespace) -> None:
    from ..models.losses import with_perplexities
    from ..store import checkpoint
    from ..training.evaluate import split_nll
    from ..training.trainer import evaluation_words
    from .progress import Status

    if os.path.exists(args.work_dir) and not os.path.isdir(args.work_dir):
        raise MakemoreError(f"{args.work_dir}: exists and is not a directory")
    parallel = _parallel(args)  # before any JAX computation: it may join a multi-host run
    writer = _is_writer()  # process 0 of a multi-host run, or the only one, saves and prints
    model, state, training, data = _start_run(args, parallel, writer)
    cfg = model.config

    def score(scored: FittedModel, record: Record | None = None) -> dict[str, float | None]:
        """dev and test whole, train on the evaluations' sample (whole unless it is large); what the
        evaluation of the scored model during training (record) already has is taken from it."""
        sample = evaluation_words(data, cfg)
        nll: dict[str, float | None] = {
            s: record[f"{s}_nll"]
            for s in ("train", "dev")
            if record and record.get(f"{s}_nll") is not None and (s == "train" or sample.words[s] is data.words[s])
        }
        with Status().phase("scoring") as update:
            tell = lambda split, done, total: update(done, total, split)  # noqa: E731
            if "train" not in nll:
                nll.update(split_nll(scored, sample, ["train"], tell))
            nll.update(split_nll(scored, data, [s for s in ("dev", "test") if s not in nll], tell))
        return {f"{s}_nll": nll[s] for s in ("train", "dev", "test")}

    metrics = None
    final: FittedModel = model  # what is scored and saved: the counted model, or the best by dev NLL
    if model.model_def.counted:  # complete already
        step = 0
        if data.local_only:  # every process scores its part (a collective)
            metrics = score(model)
        if not writer:
            print(f"process {_process_index()}: counted; process 0 saves the model")
            return
    else:
        state = _train_steps(args, model, state, data, training, parallel, writer)
        if not writer:
            print(f"process {_process_index()}: trained to step {cfg.steps:,}; process 0 saves the model")
            return
        best = checkpoint.load(args.work_dir, "model")  # the best by dev NLL
        final, step = best.model, best.step
        if data.local_only:  # scoring is a collective now; the best model was scored when it was the newest
            scored = next((r for r in state.history if r["step"] == step and ("dev_nll" in r or "train_nll" in r)), {})
            metrics = {f"{s}_nll": scored.get(f"{s}_nll") for s in ("train", "dev", "test")}
        else:
            metrics = score(final, next((r for r in state.history if r["step"] == step and "dev_nll" in r), None))
    if metrics is None:
        metrics = score(final)
    metrics = with_perplexities(metrics)
    checkpoint.save(
        args.work_dir, "model", final, step=step, best_dev=metrics["dev_nll"], training=training, metrics=metrics
    )
    which = "" if final.model_def.counted else f" (best by dev, step {step:,})"
    print(f"{final.model_def.label(cfg)}{which}: {_nll_line(metrics)}")
    print(f"saved to {args.work_dir}/")
    _print_samples(final, args.work_dir, cfg.seed, args.num_samples)


def _start_run(
    args: argparse.Namespace, parallel: DataParallel | None, writer: bool
) -> tuple[TrainedModel, TrainState | None, dict, Dataset]:
    """(model, state, training record, data) of a new run, or of the run in WORKDIR with --resume.

    The data line is printed.
    """
    from ..data.hosts import SlicedDataset
    from ..models import get_model
    from ..training.config import TrainConfig
    from ..training.sizes import check_fits
    from ..training.trainer import new_model
    from .progress import Status

    given = _given_settings(args)
    path = _input_path(args)
    if args.resume:
        if os.path.isdir(args.work_dir) and writer:  # else loading says there is no such work directory
            _hold_workdir(args.work_dir)
        model, state, training = _resume_state(args, given)
        if args.input_file is None:  # the input the run recorded, not the bundled names
            path = _recorded_input(training)
        data, digest, num_words = _load_data(
            path, model.config, parallel, expect_sha256=training.get("input_sha256"), recorded=args.input_file is None
        )
        if data.vocab != model.vocab:
            raise MakemoreError("--resume: the input's vocabulary differs from the saved model's")
        check_fits(model.config, data, parallel)  # this machine may hold less than the one that began the run
    else:
        cfg = TrainConfig.create(args.type or "bigram", **given).validate()
        if cfg.steps == 0 and not get_model(cfg.type).counted:
            raise MakemoreError("--steps 0: nothing to train (give at least 1 step)")
        data, digest, num_words = _load_data(path, cfg, parallel)
        check_fits(cfg, data, parallel)  # what cannot fit is refused before counting, compiling or a work directory
        status = Status()
        with status.phase("counting" if get_model(cfg.type).counted else "initialising"):
            model, state = new_model(cfg, data, parallel, progress=status.show), None
        training = {"input": os.path.abspath(path), "input_sha256": digest, "num_words": num_words}
        if writer:
            _hold_workdir(args.work_dir)
    if writer:
        sizes = " / ".join(f"{s} {data.sizes[s]:,}" for s in ("train", "dev", "test"))
        print(f"data: {path}: {counted(num_words, 'word')} ({sizes}), vocabulary of {data.vocab.size}", flush=True)
        print(_devices_line(parallel), flush=True)
    if isinstance(data, SlicedDataset):  # data.local_only: one process's part of a multi-host run
        parsed, first, end = data.parsed
        print(
            f"process {_process_index()}: parsed {parsed:,} of the {num_words:,} words "
            f"(bytes {first:,} to {end:,} of {path})",
            flush=True,
        )
    return model, state, training, data


def _train_steps(
    args: argparse.Namespace,
    model: TrainedModel,
    state: TrainState | None,
    data: Dataset,
    training: dict,
    parallel: DataParallel | None,
    writer: bool,
) -> TrainState:
    """fit, saving the best model and the last state as it goes; Ctrl-C or SIGTERM saves and exits."""
    import signal

    from ..store import checkpoint
    from ..training.trainer import Interrupted, fit
    from . import interrupt
    from .progress import reporter

    cfg = model.config

    def save(model_now: TrainedModel, st: TrainState, is_best: bool) -> None:
        # last.json goes last: a kill between these writes leaves metrics for every step
        # up to it, and a best model no older than it, so --resume loses nothing
        checkpoint.write_metrics(args.work_dir, st.history)
        if is_best:
            checkpoint.save(args.work_dir, "model", model_now, step=st.step, best_dev=st.best_dev, training=training)
        checkpoint.save(
            args.work_dir,
            "last",
            model_now,
            step=st.step,
            best_dev=st.best_dev,
            training=training,
            opt_state=st.opt_state,
        )

    stop_signal = interrupt.Deferred()  # Ctrl-C or SIGTERM: finish the chunk, save, stop
    try:
        # a live line on a terminal, plain lines in logs or with --log-every
        with (
            stop_signal.active(),
            reporter(
                cfg.steps,
                quiet=args.quiet or not writer,
                plain=args.log_every is not None,
                start_step=state.step if state else 0,
            ) as report,
        ):
            return fit(
                model,
                data,
                state,
                report.record,
                save if writer else None,
                stop_requested=stop_signal,
                parallel=parallel,
            )
    except Interrupted as stop:
        signum = stop_signal.signum or signal.SIGINT
        print(
            f"makemore train: {interrupt.describe(signum)} at step {stop.step:,}; saved, continue with: "
            f"{_resume_command(args)}",
            file=sys.stderr,
        )
        raise SystemExit(interrupt.exit_status(signum)) from None


def cmd_tune(args: argparse.Namespace) -> None:
    import time

    from ..data.words import Dataset
    from ..models import get_model
    from ..models.losses import with_perplexities
    from ..models.ngram import memory_bytes
    from ..seeding import seed_key
    from ..store import checkpoint
    from ..training import tune
    from ..training.config import TrainConfig
    from ..training.evaluate import split_nll
    from ..training.sizes import check_fits, check_tunable
    from ..training.trainer import new_model

    if os.path.exists(args.work_dir) and not os.path.isdir(args.work_dir):
        raise MakemoreError(f"{args.work_dir}: exists and is not a directory")
    given = {k: v for k, v in (("seed", args.seed), ("split", args.split), ("memory", args.memory)) if v is not None}
    cfg = TrainConfig.create("ngram", **given).validate()
    tune.check_max_order(args.max_order)  # from the flag alone, before the input is read
    path = _input_path(args)
    words, digest = _read_input(path)
    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    check_tunable(cfg, data, args.max_order)  # a dev split, and orders that can be counted: before counting
    sizes = " / ".join(f"{s} {len(data.words[s]):,}" for s in ("train", "dev", "test"))
    print(f"data: {path}: {counted(len(words), 'word')} ({sizes}), vocabulary of {data.vocab.size}", flush=True)
    settings = tune.grid(args.max_order)
    t0 = time.perf_counter()
    nll = tune.dev_nll(data.words["train"], data.words["dev"], data.vocab, settings, memory_bytes(cfg.memory))
    elapsed = time.perf_counter() - t0
    for line in tune.format_tables(settings, nll):
        print(line)
    chosen = tune.best(settings, nll)
    print(
        f"{len(settings)} settings, orders 1..{args.max_order}, counted and scored on dev in {elapsed:.1f} s; "
        f"best: {chosen.describe()}"
    )

    cfg = TrainConfig.create("ngram", **given, **chosen.config_fields()).validate()
    check_fits(cfg, data)  # the chosen order is at most --max-order, checked above: this only confirms it
    model = new_model(cfg, data)
    metrics = with_perplexities(
        {f"{s}_nll": v for s, v in split_nll(model, data).items()}
    )  # test: once, for the chosen model
    grid = [
        {"order": s.order, "method": s.method, "value": s.value, "dev_nll": float(x)} for s, x in zip(settings, nll)
    ]
    training = {"input": os.path.abspath(path), "input_sha256": digest, "num_words": len(words), "tuning": grid}
    _hold_workdir(args.work_dir)
    checkpoint.save(args.work_dir, "model", model, best_dev=metrics["dev_nll"], training=training, metrics=metrics)
    print(f"{get_model(cfg.type).label(cfg)}: {_nll_line(metrics)}")
    print(f"saved to {args.work_dir}/")
    _print_samples(model, args.work_dir, cfg.seed, args.num_samples)


def _print_samples(model: FittedModel, work_dir: str, seed: int, n: int) -> None:
    """The names `makemore sample -o WORK_DIR --seed SEED -n N` prints, after a model is saved, as they come.

    The hint quotes WORK_DIR where a shell would split it (a space in the path).
    """
    import shlex

    from .. import api

    for i, names in enumerate(api.Model(model).sample_chunks(n, seed=seed)):
        if i == 0:  # after the request is checked: a refused one prints no header
            print(f"samples (makemore sample -o {shlex.quote(work_dir)} --seed {seed}):")
        sys.stdout.write("".join(f"  {name}\n" for name in names))
        sys.stdout.flush()


def _novelty_report(loaded: Model) -> tuple[Callable[[list[str]], None], Callable[[], str]]:
    """(tally, line) for the samples of loaded (an api.Model): tally(names) sorts a chunk of samples into
    the training, dev and test sets of the training input, or new (in no split: what --new-only means);
    line() is the report, e.g. "2 of 20 samples are in the training set, 1 in the dev set, 0 in the test
    set, 17 are new". Names are tallied as they stream by, not kept."""
    from ..api import training_input
    from ..data.words import Dataset
    from ..seeding import seed_key

    try:
        words = training_input(loaded.training)
    except MakemoreError as err:
        message = f"({err}: cannot tell which samples are new)"
        return (lambda names: None), (lambda: message)
    cfg = loaded.model.config
    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    splits = [(s, set(data.words[s])) for s in ("train", "dev", "test")]  # a word in two splits counts in the first
    counts = dict.fromkeys(("train", "dev", "test", "new"), 0)

    def tally(names: list[str]) -> None:
        for name in names:
            counts[next((s for s, known in splits if name in known), "new")] += 1

    def line() -> str:
        total = sum(counts.values())
        of_total = f"of {total:,} sample is" if total == 1 else f"of {total:,} samples are"  # "1 of 1 sample is"
        return (
            f"{counts['train']:,} {of_total} in the training set, {counts['dev']:,} in the dev set, "
            f"{counts['test']:,} in the test set, {counts['new']:,} {'is' if counts['new'] == 1 else 'are'} new"
        )

    return tally, line


def cmd_sample(args: argparse.Namespace) -> None:
    """Print the names as they are drawn, a chunk at a time (memory does not grow with -n), then the report.

    Where fewer names qualify than asked for (--unique, --new-only, --min-len), those found are printed,
    then NotEnough says why there are not more (one line, exit 2).
    """
    from .. import api
    from ..sampling import check_sizes

    check_sizes(args.num_samples, args.max_len)  # before the model is read
    model = api.load(args.work_dir)
    chunks = model.sample_chunks(
        args.num_samples,
        seed=args.seed,
        prefix=args.prefix,
        min_len=args.min_len,
        max_len=args.max_len,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        unique=args.unique,
        new_only=args.new_only,
    )
    tally, report = _novelty_report(model) if not args.no_report else (None, None)
    printed = 0
    for names in chunks:
        if args.log_prob:
            lines = [f"{log_p:9.3f}  {name}\n" for log_p, name in zip(model.log_prob(names), names)]
        else:
            lines = [f"{name}\n" for name in names]
        sys.stdout.write("".join(lines))
        sys.stdout.flush()
        printed += len(names)
        if tally is not None:
            tally(names)
    if printed and report is not None:
        print(report(), file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> None:
    from ..data.words import Dataset, word_lengths
    from ..models.losses import perplexity
    from ..store import checkpoint
    from ..training.evaluate import split_nll

    model = checkpoint.load(args.work_dir, "model").model
    path = _input_path(args)
    words, _ = _read_input(path)
    data = Dataset(model.vocab, {"train": [], "dev": [], "test": words})
    try:
        nll = split_nll(model, data, ["test"])["test"]
    except MakemoreError as err:
        raise MakemoreError(f"{path}: {err}") from None
    n_chars = int(word_lengths(words).sum()) + len(words)
    print(
        f"{path}: mean NLL {nll:.4f} (perplexity {perplexity(nll):.2f})"
        f" over {counted(n_chars, 'character')} ({counted(len(words), 'word')})"
    )
    if args.per_word:
        from ..training.evaluate import word_nll

        _print_extremes(words, word_nll(model, words), args.per_word)


def _print_extremes(words: Sequence[str], total_nll: np.ndarray, n: int) -> None:
    """The n most and n least likely distinct words, ranked by NLL per character (end included)."""
    import numpy as np

    first = {w: i for i, w in reversed(list(enumerate(words)))}  # each word once, at its first line
    idx = np.array(sorted(first.values()))
    per_char = np.asarray(total_nll, np.float64)[idx] / np.array([len(words[i]) + 1 for i in idx])
    order = idx[np.argsort(per_char, kind="stable")]
    per_char_of = dict(zip(idx.tolist(), per_char.tolist()))
    header = "  NLL/char     log p  word"
    for what, chosen in (("most", order[:n]), ("least", order[::-1][:n])):
        print(
            f"{len(chosen)} {what} likely words"
            " (mean NLL per character, the end counted as one; log p = total log-probability):"
        )
        print(header)
        for i in chosen:
            print(f"  {per_char_of[int(i)]:8.4f}  {-float(total_nll[i]):8.3f}  {words[i]}")


def cmd_plot(args: argparse.Namespace) -> None:
    from . import plot

    plot.new_figure(1, 1)  # without matplotlib, say so before any work
    path, fmt = plot.output_path(args.save, args.format, args.kind)
    if args.kind == "counts":
        plot.plot_counts(_input_path(args), path, fmt, args.dpi, args.labels)
    elif args.kind == "weights":
        plot.plot_weights(args.work_dir, path, fmt, args.dpi)
    elif args.kind == "loss":
        plot.plot_loss(
            args.work_dirs or [DEFAULT_WORKDIR],
            path,
            fmt,
            args.dpi,
            args.log_x,
            warn=lambda message: print(f"makemore plot: {message}", file=sys.stderr),
        )
    else:
        plot.plot_embeddings(args.work_dir, path, fmt, args.dpi)
    print(f"wrote {path}")


def cmd_mix(args: argparse.Namespace) -> None:
    from ..data.words import Dataset
    from ..models import mixture
    from ..models.losses import perplexity
    from ..seeding import seed_key
    from ..store import checkpoint

    out = os.path.abspath(args.work_dir)
    if out in {os.path.abspath(d) for d in args.models}:
        raise MakemoreError(f"the mixture's work directory {args.work_dir} is one of its models: choose another -o")
    if len(args.models) < 2:
        raise MakemoreError("a mixture needs at least two model directories")
    loaded = [checkpoint.load(d, "model") for d in args.models]
    members = []
    for d, ld in zip(args.models, loaded):
        if isinstance(ld.model, mixture.Mixture):
            raise MakemoreError(f"{d} holds a mixture: mix its member models instead")
        members.append(ld.model)
    mixture.check_members(members)
    path, digest = loaded[0].training.get("input"), loaded[0].training.get("input_sha256")
    for d, ld in zip(args.models, loaded):
        if ld.training.get("input_sha256") != digest:
            raise MakemoreError(f"{d} was trained on other data than {args.models[0]}")
    try:
        words, now = _read_input(path if isinstance(path, str) else "")
    except MakemoreError:
        raise MakemoreError(f"the models' training input {path} is gone: the dev split cannot be rebuilt") from None
    if now != digest:
        raise MakemoreError(
            f"the models' training input {path} changed since training: the dev split cannot be rebuilt"
        )
    cfg = members[0].config
    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    mix, report = mixture.fit(members, data)
    splits = [s for s in ("train", "dev", "test") if s in report["mixture"]]

    def cells(nlls: Iterable[float]) -> str:  # each split's NLL and perplexity
        return "  ".join(f"{x:9.4f} ({perplexity(x):6.2f})" for x in nlls)

    print(f"{'model':<40} {'weight':>7}  " + "  ".join(f"{s + ' NLL (ppl)':>18}" for s in splits))
    for k, (d, ld) in enumerate(zip(args.models, loaded)):
        label = f"{d} ({ld.model.type})"
        print(f"{label:<40} {report['weights'][k]:7.3f}  " + cells(report["members"][s][k] for s in splits))
    print(f"{'mixture':<40} {1:7.3f}  " + cells(report["mixture"][s] for s in splits))
    _hold_workdir(args.work_dir)
    checkpoint.save_mixture(args.work_dir, mix, loaded, args.models, report)
    print(f"saved to {args.work_dir.rstrip(os.sep)}{os.sep}")
    _print_samples(mix, args.work_dir, args.seed, args.num_samples)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status. Every failure a user can meet ends here as one line on
    stderr (``makemore CMD: error: ...``), never a traceback."""
    from ..store import lock
    from . import interrupt

    stdout_closed = _guard_standard_streams()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand that was given, so the hint points at its own --help
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    failed = True
    try:
        with interrupt.stop_raises():  # SIGTERM ends a command the way Ctrl-C does
            if stdout_closed:
                raise MakemoreError("standard output is closed: there is nowhere to print (redirect it, e.g. > FILE)")
            if args.command != "train":  # train chooses its devices itself (it may join several hosts first)
                _use_device(getattr(args, "device", None))
            args.run(args)
            sys.stdout.flush()  # a full disk or a reader gone shows here, inside the one exit, not at shutdown
        failed = False
    except MakemoreError as err:
        return _fail(args, str(err))
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", 2)  # a plain KeyboardInterrupt is SIGINT's
        _say(f"makemore {args.command}: {interrupt.describe(signum)}")
        return interrupt.exit_status(signum)
    except BrokenPipeError:
        # `makemore sample | head`: the reader left; not an error of ours.
        _silence_stdout()
        failed = False
        return 0
    except Exception as err:  # noqa: BLE001 - the failures below get one line; anything else is a bug
        message = _failure_line(err)
        if message is None:
            raise
        if isinstance(err, OSError) and err.filename is None:  # standard output failed: drop what it could not
            _silence_stdout()  # print, or it is tried (and fails) again at shutdown
        return _fail(args, message)
    finally:
        lock.release_all(remove_created_if_empty=failed)
    return 0


def _failure_line(err: BaseException) -> str | None:
    """One line for a failure that is not a mistake in the code: memory, numbers too large for the
    machine, the output or a file that cannot be written, a name the terminal cannot show; None for
    anything else (a bug, which keeps its traceback)."""
    import errno

    if isinstance(err, MemoryError) or (
        type(err).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and "RESOURCE_EXHAUSTED" in str(err)
    ):
        return "out of memory (a smaller model, --batch-size, -n or input needs less)"
    if isinstance(err, OverflowError):
        return f"a number is too large for this machine ({err})"
    if isinstance(err, UnicodeEncodeError):  # a name the terminal's encoding cannot show
        return (
            f"cannot print {err.object[err.start : err.end]!r} in this terminal's encoding ({err.encoding}); "
            "set PYTHONIOENCODING=utf-8"
        )
    if isinstance(err, OSError) and err.errno is not None:
        where = err.filename if err.filename is not None else "standard output"
        reason = err.strerror or errno.errorcode.get(err.errno, str(err))
        return (
            f"cannot write to {where}: {reason}"
            if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EBADF, errno.EIO, errno.EDQUOT)
            else f"{where}: {reason}"
        )
    return None


def _fail(args: argparse.Namespace, message: str) -> int:
    _say(f"makemore {args.command}: error: {message}")
    return EXIT_USAGE


def _say(line: str) -> None:
    """A line on stderr; nothing if stderr itself is closed or failing (there is nowhere else to say it)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, AttributeError, ValueError):
        pass


def _silence_stdout() -> None:
    """Point standard output at the null device, so the unprinted rest of its buffer goes nowhere."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or not a file (a test's capture)
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _guard_standard_streams() -> bool:
    """Give any closed standard descriptor (0, 1, 2) the null device, so that no file this command opens
    later gets its number (and receives what is printed); True if standard output was closed."""
    closed_stdout = sys.stdout is None
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if opened != fd:
                os.close(opened)
            closed_stdout = closed_stdout or fd == 1
    return closed_stdout
