"""`makemore train`, `tune` and `mix`: flags in, a run started, its events printed.

The flags of the training settings come from their declarations
(training.config: each setting's kind, help, scope and each model type's
default); the run itself is runs.training.TrainingRun, the one Python's
``makemore_jax.train`` starts too.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from typing import TYPE_CHECKING, Any

from ..errors import MakemoreError

if TYPE_CHECKING:
    from ..runs.placement import Placement
    from .flags import AddWorkdir, Subparsers

GROUPS = {
    "model": "model",
    "sizes": "model sizes",
    "optimizer": "optimizer and steps (the trained models)",
    "evaluation": "evaluation and progress (the trained models)",
    "ngram": "counting and n-grams",
}


def add_train_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    from ..models import TRAINING_TYPES

    t = sub.add_parser(
        "train",
        help="train a model and save it to the work directory",
        description="Train (or count) a model, report train/dev/test NLL, save it, print samples. The defaults "
        "depend on --type: the bigram follows the lecture (full-batch SGD, lr 50, λ 0.01, 500 steps); the other "
        "neural models the PyTorch makemore (AdamW, lr 5e-4, weight decay 0.01, batch 32, 10,000 steps). A setting "
        "the type does not take is refused. makemore_jax.train(input, **settings) runs the same.",
    )
    t.add_argument(
        "-i", "--input-file", metavar="FILE", default=None, help="words, one per line, UTF-8 (default: names.txt)"
    )
    workdir(t)
    t.add_argument("--type", choices=TRAINING_TYPES, help="model type (default: bigram)")
    t.add_argument("--resume", action="store_true", help="continue the run saved in WORKDIR exactly where it stopped")
    t.add_argument(
        "--config",
        metavar="FILE",
        help='a TOML file of settings by name (type = "transformer", batch_size = 64, ...); flags given win',
    )
    add_setting_flags(t)
    t.add_argument(
        "--num-samples", type=_count, default=10, metavar="N", help="names to print after training (default 10)"
    )
    t.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    t.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard curves into WORKDIR (Loss/train, Loss/dev, Loss/test, learning_rate); "
        "needs pip install 'makemore-jax[tensorboard]'",
    )
    _add_parallel_flags(t)
    t.set_defaults(run=cmd_train)


def add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """A flag for each setting (or those named), with its help and each type's default, from its declaration."""
    from ..training.config import MODEL, SETTINGS, Choice, Integer, Switch, default_text, takers

    groups: dict[str, Any] = {}
    for name, spec in SETTINGS.items():
        if names is not None and name not in names:
            continue
        group = groups.get(spec.group) or groups.setdefault(
            spec.group, parser.add_argument_group(GROUPS[spec.group]) if names is None else parser
        )
        who = f"{takers(name).removeprefix('only for ')}: " if spec.scope == MODEL and names is None else ""
        text = f"{who}{spec.help} (default {default_text(name)})".replace("%", "%%")  # argparse formats help with %
        flags = [f"--{name.replace('_', '-')}", *spec.aliases]
        if isinstance(spec.kind, Switch):
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        metavar = spec.metavar or (
            "{" + ",".join(spec.kind.options) + "}"
            if isinstance(spec.kind, Choice)
            else "N"
            if isinstance(spec.kind, Integer)
            else "X"
        )
        group.add_argument(*flags, dest=name, type=spec.kind.parse, metavar=metavar, default=None, help=text)
        for flag, value in spec.shortcuts:
            group.add_argument(
                flag, dest=name, action="store_const", const=value, help=f"{name} {value}".replace("%", "%%")
            )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _add_parallel_flags(t: argparse.ArgumentParser) -> None:
    from ..training.parallel import PLATFORMS
    from .flags import non_negative_int, positive_int

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
        "--shard-params", action="store_true", help="split each weight matrix over the devices instead of copying it"
    )
    g.add_argument(
        "--coordinator", metavar="HOST:PORT", help="multi-host: the address of process 0, the same for every process"
    )
    g.add_argument(
        "--num-processes", type=positive_int, metavar="P", help="multi-host: how many processes (hosts) take part"
    )
    g.add_argument(
        "--process-id", type=non_negative_int, metavar="I", help="multi-host: this process, 0..P-1; process 0 saves"
    )


def given_settings(args: argparse.Namespace) -> tuple[str | None, dict[str, object]]:
    """(model type, settings) given: the --config file's, with the flags given beside it winning."""
    from ..training.config import SETTINGS, read_config_file

    model_type: object = None
    given: dict[str, object] = {}
    if args.config is not None:
        model_type, given = read_config_file(args.config)
        if model_type is not None and not isinstance(model_type, str):
            raise MakemoreError(f"{args.config}: type must be a model type name, got {model_type!r}")
    flags = {name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None}
    return args.type or model_type, {**given, **flags}  # type: ignore[return-value]


def placement(args: argparse.Namespace) -> Placement:
    from ..runs.placement import Placement

    return Placement(
        args.devices, args.device, args.shard_params, args.coordinator, args.num_processes, args.process_id
    )


def cmd_train(args: argparse.Namespace) -> None:
    from ..runs.training import Interrupted, TrainingRun
    from . import interrupt
    from .progress import EventPrinter

    model_type, given = given_settings(args)
    stop = interrupt.Deferred()  # Ctrl-C or SIGTERM: finish the chunk, save, stop
    printer = EventPrinter(quiet=args.quiet, plain=args.log_every is not None)
    run = TrainingRun(
        args.input_file,
        model_type=model_type,
        settings=given,
        workdir=args.work_dir,
        resume=args.resume,
        where=placement(args),
        watch=printer,
        stop_requested=stop,
        tensorboard=args.tensorboard,
    )
    try:
        with stop.active(), printer:
            outcome = run.run()
    except Interrupted as stopped:
        signum = stop.signum or signal.SIGINT
        what = f"saved, continue with: {_resume_command(args)}" if stopped.saved else "nothing saved"
        print(f"makemore train: {interrupt.describe(signum)} at step {stopped.step:,}; {what}", file=sys.stderr)
        raise SystemExit(interrupt.exit_status(signum)) from None
    if run.writer:
        print_samples(outcome.fitted, args.work_dir, outcome.fitted.config.seed, args.num_samples)


def _resume_command(args: argparse.Namespace) -> str:
    given_input = f" -i {shlex.quote(args.input_file)}" if args.input_file is not None else ""
    return f"makemore train -o {shlex.quote(args.work_dir)} --resume{given_input}"


def add_tune_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    from ..models.ngram import MAX_ORDER
    from ..training.tune import DEFAULT_MAX_ORDER
    from .flags import add_device_flag, positive_int

    u = sub.add_parser(
        "tune",
        help="choose an n-gram model's order and smoothing on the dev split, save it",
        description="Count the training split once, score every order 1..N (--max-order) with add-k, "
        "Kneser-Ney and modified Kneser-Ney smoothing over a grid on the dev split, print the table, "
        "evaluate the best on test once and save it. makemore_jax.tune(input, ...) runs the same.",
    )
    u.add_argument("--type", choices=("ngram",), required=True, help="the model family to tune (ngram)")
    u.add_argument(
        "-i", "--input-file", metavar="FILE", default=None, help="words, one per line, UTF-8 (default: names.txt)"
    )
    workdir(u)
    add_setting_flags(u, ("seed", "split", "memory"))
    u.add_argument(
        "--max-order",
        type=positive_int,
        default=DEFAULT_MAX_ORDER,
        metavar="N",
        help=f"try orders 1..N (default {DEFAULT_MAX_ORDER}, at most {MAX_ORDER})",
    )
    u.add_argument(
        "--num-samples", type=_count, default=10, metavar="N", help="names to print from the chosen model (default 10)"
    )
    add_device_flag(u)
    u.set_defaults(run=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> None:
    from ..runs.tuning import tune
    from .progress import EventPrinter

    given = {name: getattr(args, name) for name in ("seed", "split", "memory") if getattr(args, name) is not None}
    with EventPrinter() as printer:
        outcome = tune(args.input_file, max_order=args.max_order, settings=given, workdir=args.work_dir, watch=printer)
    print_samples(outcome.fitted, args.work_dir, outcome.fitted.config.seed, args.num_samples)


def add_mix_parser(sub: Subparsers, workdir: AddWorkdir) -> None:
    from .flags import add_device_flag, seed_int

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
    m.add_argument("--num-samples", type=_count, default=10, metavar="N", help="names to print (default 10)")
    add_device_flag(m)
    m.set_defaults(run=cmd_mix)


def cmd_mix(args: argparse.Namespace) -> None:
    from ..runs.mixing import mix
    from .progress import EventPrinter

    with EventPrinter() as printer:
        outcome = mix(args.models, workdir=args.work_dir, watch=printer)
    print_samples(outcome.fitted, args.work_dir, args.seed, args.num_samples)


def print_samples(model: Any, work_dir: str, seed: int, n: int) -> None:
    """The names `makemore sample -o WORK_DIR --seed SEED -n N` prints, after a model is saved, as they come.

    The hint quotes WORK_DIR where a shell would split it (a space in the path).
    """
    from .. import api

    for i, names in enumerate(api.Model(model).sample_chunks(n, seed=seed)):
        if i == 0:  # after the request is checked: a refused one prints no header
            print(f"samples (makemore sample -o {shlex.quote(work_dir)} --seed {seed}):")
        sys.stdout.write("".join(f"  {name}\n" for name in names))
        sys.stdout.flush()
