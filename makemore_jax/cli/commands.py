"""The `makemore` command: the parser, and the sample, eval and plot commands (train, tune, mix: cli/train.py).

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
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from ..errors import MakemoreError, counted
from .export import add_export_parser, add_import_parser
from .flags import (
    add_device_flag,
    non_negative_float,
    non_negative_int,
    positive_int,
    seed_int,
    unit_float,
)
from .train import add_mix_parser, add_train_parser, add_tune_parser

if TYPE_CHECKING:  # the package's modules are imported where they are used (see above)
    import numpy as np

    from ..api import Model
    from ..data.words import WordArray
    from .flags import AddWorkdir, Subparsers


EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
DEFAULT_WORKDIR = "out"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line, not usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(
        prog="makemore",
        description="Character-level language models in JAX: train on a list of words, sample new ones.",
    )
    parser.add_argument("--version", action="version", version=f"makemore-jax {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{train,tune,mix,sample,eval,export,import,plot}"
    )

    def workdir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-o",
            "--work-dir",
            metavar="WORKDIR",
            default=DEFAULT_WORKDIR,
            help=f"work directory (default: {DEFAULT_WORKDIR})",
        )

    add_train_parser(sub, workdir)
    add_tune_parser(sub, workdir)
    add_mix_parser(sub, workdir)
    _add_sample_parser(sub, workdir)
    _add_eval_parser(sub, workdir)
    _add_plot_parser(sub, workdir)
    add_export_parser(sub, workdir)
    add_import_parser(sub, workdir)
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
    _add_steer_flags(s)
    _add_sample_output_flags(s)
    add_device_flag(s)
    s.set_defaults(run=cmd_sample)


def _add_steer_flags(s: argparse.ArgumentParser) -> None:
    """The flags of `sample` that steer each draw: temperature, top-k, top-p, prefix, shortest and longest name."""
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


def _add_sample_output_flags(s: argparse.ArgumentParser) -> None:
    """The flags of `sample` that choose which drawn names are printed, and what is printed with them."""
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
    add_device_flag(e)
    e.set_defaults(run=cmd_eval)


def _use_device(platform: str | None) -> None:
    """Make the first device of this kind JAX's default for the command (MakemoreError if there is none)."""
    if platform is not None:
        from ..runs.placement import use_device

        use_device(platform)


def _add_plot_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a picture: counts, weights, loss or embeddings (needs matplotlib)",
        description="Draw a picture to a PNG (default) or SVG file. "
        "Needs matplotlib: pip install 'makemore-jax[plot]'.",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{counts,weights,loss,embeddings}")
    _add_plot_counts_parser(kinds)
    _add_plot_weights_parser(kinds, workdir)
    _add_plot_loss_parser(kinds)
    _add_plot_embeddings_parser(kinds, workdir)
    p.set_defaults(run=cmd_plot)


def _add_image_flags(q: argparse.ArgumentParser, kind: str) -> None:
    """The flags every `plot` kind shares: where the image goes, its format and resolution."""
    q.add_argument("--save", metavar="FILE", help=f"the image, .png or .svg (default: {kind}.png here)")
    q.add_argument("--format", choices=("png", "svg"), help="png or svg (default: the suffix of --save, else png)")
    q.add_argument("--dpi", type=positive_int, default=100, help="pixels per inch of a PNG (default 100)")


def _add_plot_counts_parser(kinds: Subparsers) -> None:
    """`plot counts`: the bigram count matrix of a word file."""
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
    _add_image_flags(c, "counts")


def _add_plot_weights_parser(kinds: Subparsers, workdir: AddWorkdir) -> None:
    """`plot weights`: a trained neural bigram beside the counting model."""
    w = kinds.add_parser(
        "weights",
        help="a trained neural bigram's probabilities beside the counting model's",
        description="softmax(W) of the neural bigram in WORKDIR, the add-k counting model of its training split, "
        "and their difference.",
    )
    workdir(w)
    _add_image_flags(w, "weights")


def _add_plot_loss_parser(kinds: Subparsers) -> None:
    """`plot loss`: the curves of one or more runs (-o repeats, so it has its own work directory flag)."""
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
    _add_image_flags(lo, "loss")


def _add_plot_embeddings_parser(kinds: Subparsers, workdir: AddWorkdir) -> None:
    """`plot embeddings`: a model's character embedding in two dimensions."""
    e = kinds.add_parser(
        "embeddings",
        help="a model's character embedding in 2-D, each point labelled",
        description="The character embedding (wte) of the model in WORKDIR: its two dimensions when n_embd = 2, "
        "else its first two principal components.",
    )
    workdir(e)
    _add_image_flags(e, "embeddings")


def _input_path(args: argparse.Namespace) -> str:
    from ..data.words import bundled_names_path

    return args.input_file if args.input_file is not None else bundled_names_path()


def _read_input(path: str) -> tuple[WordArray, str]:
    """The words of a file (a data.words.WordArray: arrays, not a str a word) and the SHA-256 of its bytes."""
    from ..data.words import parse_word_array, read_bytes

    raw = read_bytes(path)
    return parse_word_array(raw, source=path), hashlib.sha256(raw).hexdigest()


def _novelty_report(loaded: Model) -> tuple[Callable[[list[str]], None], Callable[[], str]]:
    """(tally, line) for the samples of loaded (an api.Model): tally(names) sorts a chunk of samples into
    the training, dev and test sets of the training input, or new (in no split: what --new-only means);
    line() is the report, e.g. "2 of 20 samples are in the training set, 1 in the dev set, 0 in the test
    set, 17 are new". Names are tallied as they stream by, not kept."""
    from ..api import training_input
    from ..data.words import SPLITS, Dataset
    from ..seeding import seed_key

    try:
        words = training_input(loaded.training)
    except MakemoreError as err:
        message = f"({err}: cannot tell which samples are new)"
        return (lambda names: None), (lambda: message)
    cfg = loaded.fitted.config
    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    splits = [(s, set(data.words[s])) for s in SPLITS]  # a word in two splits counts in the first
    counts = dict.fromkeys((*SPLITS, "new"), 0)

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

    model = checkpoint.load(args.work_dir, "model").fitted
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
