"""The `makemore` command: train, sample, eval.

Mistakes a user can make end as one line on stderr and exit status 2; the
work directory is only written after a run has succeeded.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .errors import MakemoreError

EXIT_USAGE = 2
DEFAULT_WORKDIR = "out"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line, not usage plus error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, check, what):
    def parse(text: str):
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


def split_fractions(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values) or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"expected three numbers >= 0 like 80,10,10 (train > 0), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="makemore", description="Character-level language models in JAX: train on a list of words, sample new ones.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"makemore-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,eval}")

    def common(p, input_help):
        p.add_argument("-i", "--input-file", metavar="FILE", default=None, help=input_help)
        p.add_argument("-o", "--work-dir", metavar="WORKDIR", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")

    t = sub.add_parser("train", help="train a model and save it to the work directory", description="Train a bigram model (counting or neural), report train/dev/test NLL, save it, print samples.")
    common(t, "words, one per line, UTF-8 (default: the bundled names.txt)")
    t.add_argument("--type", default="bigram", choices=("counts", "bigram"), help="counts: the counting model; bigram: the neural bigram (default)")
    t.add_argument("--seed", type=seed_int, default=0, help="fixes split, init, batch order and samples (default 0)")
    t.add_argument("--split", type=split_fractions, default=(0.8, 0.1, 0.1), metavar="TRAIN,DEV,TEST", help="proportions of the words (default 80,10,10)")
    t.add_argument("--smoothing", type=non_negative_float, default=1.0, metavar="K", help="add-k smoothing of the counting model (default 1)")
    t.add_argument("--l2", type=non_negative_float, default=0.01, metavar="LAMBDA", help="L2 penalty λ·mean(W²) of the neural bigram (default 0.01)")
    t.add_argument("--lr", "--learning-rate", type=non_negative_float, default=50.0, help="SGD learning rate (default 50)")
    t.add_argument("--steps", "--max-steps", type=non_negative_int, default=500, help="SGD steps (default 500)")
    t.add_argument("--batch-size", "-b", type=non_negative_int, default=0, help="pairs per step; 0 = all training pairs (default)")
    t.add_argument("--num-samples", type=non_negative_int, default=10, metavar="N", help="names to print after training (default 10)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    t.set_defaults(run=cmd_train)

    s = sub.add_parser("sample", help="print names sampled from a trained model", description="Print names sampled from the model in WORKDIR; the same seed gives the same names.")
    s.add_argument("-o", "--work-dir", metavar="WORKDIR", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")
    s.add_argument("-n", "--num-samples", type=non_negative_int, default=20, metavar="N", help="how many names (default 20)")
    s.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default 0)")
    s.add_argument("--temperature", "-t", type=non_negative_float, default=1.0, metavar="T", help="0 = greedy, 1 = the model's distribution (default 1)")
    s.add_argument("--max-len", type=positive_int, default=None, metavar="L", help="cut names at L characters (default: twice the longest training word)")
    s.set_defaults(run=cmd_sample)

    e = sub.add_parser("eval", help="mean NLL of a word list under a trained model", description="Mean negative log-likelihood per character (end included) of the words in FILE.")
    common(e, "words to score (default: the bundled names.txt)")
    e.set_defaults(run=cmd_eval)
    return parser


def _input_path(args) -> str:
    from .data import bundled_names_path

    return args.input_file if args.input_file is not None else bundled_names_path()


def _fmt(x) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"


def _check_workdir_writable_target(workdir: str) -> None:
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise MakemoreError(f"{workdir}: exists and is not a directory")


def cmd_train(args) -> None:
    import numpy as np

    from . import checkpoint
    from .data import read_words
    from .sampling import sample_names
    from .seeding import seed_key
    from .train import Dataset, TrainConfig, logits_table, train_on

    cfg = TrainConfig(
        type=args.type, seed=args.seed, split=args.split, smoothing=args.smoothing,
        l2=args.l2, lr=args.lr, steps=args.steps, batch_size=args.batch_size,
    ).validate()
    _check_workdir_writable_target(args.work_dir)
    path = _input_path(args)
    words = read_words(path)

    def progress(r):
        if not args.quiet:
            dev = f"  dev {r['dev_nll']:.4f}" if "dev_nll" in r else ""
            note = f", compiled in {r['compile_s']:.2f} s" if "compile_s" in r else ""
            print(f"step {r['step']:>7,}/{cfg.steps:,}  loss {r['loss']:.4f}{dev}  ({r['steps_per_s']:,.0f} steps/s{note})", flush=True)

    data = Dataset.build(words, cfg.seed, cfg.split)
    sizes = " / ".join(f"{s} {len(data.words[s]):,}" for s in ("train", "dev", "test"))
    print(f"data: {path}: {len(words):,} words ({sizes}), vocabulary of {data.vocab.size}", flush=True)
    result = train_on(data, cfg, progress)
    m = result.metrics
    print(f"{cfg.type}: train NLL {_fmt(m['train_nll'])}  dev NLL {_fmt(m['dev_nll'])}  test NLL {_fmt(m['test_nll'])}")
    training = {
        "input": os.path.abspath(path), "num_words": len(words),
        "max_word_len": max(len(w) for w in data.words["train"]),
        "config": {**cfg.__dict__, "split": list(cfg.split)},
    }
    ckpt = checkpoint.Checkpoint(cfg.type, data.vocab, {k: np.asarray(v) for k, v in result.params.items()},
                                 result.hparams, training, result.metrics)
    checkpoint.save(args.work_dir, ckpt, result.history)
    print(f"saved to {args.work_dir}/")
    if args.num_samples:
        table = logits_table(cfg.type, result.params, result.hparams)
        names = sample_names(seed_key(cfg.seed, "sample"), table, data.vocab, args.num_samples,
                             max_len=2 * training["max_word_len"])
        print(f"samples (makemore sample -o {args.work_dir} --seed {cfg.seed}):")
        for name in names:
            print(f"  {name}")


def cmd_sample(args) -> None:
    from . import checkpoint
    from .sampling import sample_names
    from .seeding import seed_key
    from .train import logits_table

    ckpt = checkpoint.load(args.work_dir)
    max_len = args.max_len or 2 * int(ckpt.training.get("max_word_len", 25))
    table = logits_table(ckpt.type, ckpt.params, ckpt.hparams)
    for name in sample_names(seed_key(args.seed, "sample"), table, ckpt.vocab, args.num_samples,
                             max_len=max_len, temperature=args.temperature):
        print(name)


def cmd_eval(args) -> None:
    import jax

    from . import checkpoint
    from .counts import count_matrix
    from .data import bigram_pairs, read_words
    from .losses import mean_nll_counts
    from .train import logits_table

    ckpt = checkpoint.load(args.work_dir)
    path = _input_path(args)
    words = read_words(path)
    try:
        xs, ys = bigram_pairs(words, ckpt.vocab)
    except MakemoreError as err:
        raise MakemoreError(f"{path}: {err}") from None
    logp = jax.nn.log_softmax(logits_table(ckpt.type, ckpt.params, ckpt.hparams), axis=-1)
    nll = mean_nll_counts(logp, count_matrix(xs, ys, ckpt.vocab.size))
    print(f"{path}: mean NLL {float(nll):.4f} over {len(xs):,} characters ({len(words):,} words)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except MakemoreError as err:
        print(f"makemore {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"makemore {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `makemore sample | head`: the reader left; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
