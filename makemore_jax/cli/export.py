"""`makemore export` and `makemore import`: a model as a file other tools read, and back (docs/interop.md).

ARPA (KenLM, SRILM) for counting and n-gram models; safetensors for any one
model (its arrays with its type, settings and vocabulary in the metadata).

Mistakes (a format it does not know, a FILE it cannot write, a model that is
no n-gram table) end as one line and exit status 2, with nothing written.
The file is written whole or not at all (a temporary file, then a rename); a
symbolic link is written through, and a device, a FIFO, a socket or a work
directory's own file (the model being exported included) is refused.
The package is imported only when the command runs, as in ``commands``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from ..errors import MakemoreError

FORMATS = ("arpa", "safetensors", "makemore")
IMPORT_FORMATS = ("makemore", "safetensors", "arpa")
Parser = TypeVar("Parser", bound=argparse.ArgumentParser)


def add_export_parser(sub: argparse._SubParsersAction[Parser], workdir: Callable[[Parser], None]) -> None:
    x = sub.add_parser(
        "export",
        help="write the model as an ARPA (KenLM, SRILM) or safetensors file",
        description="Write the model in WORKDIR to FILE in a format other tools read. arpa (the format of KenLM "
        "and SRILM): characters are the tokens and each word a sentence, <s> before it and </s> after it; a "
        "reader that scores words by standard backoff gets the model's own probabilities; counting models "
        "(--type counts) and n-gram models only. safetensors: the model's arrays (under makemore.py's names "
        "where it has the type), with its type, settings and vocabulary in the file's metadata (makemore import "
        "reads it back exactly). makemore: a makemore.py state_dict (model.pt) that its own classes load with "
        "strict=True (bigram, mlp, rnn, gru, bow, transformer; needs PyTorch).",
    )
    workdir(x)
    x.add_argument("--format", choices=FORMATS, default="arpa", help="file format (default: arpa)")
    x.add_argument(
        "file", metavar="FILE", help="the file to write (replaced if it exists; a symbolic link is written through)"
    )
    x.set_defaults(run=cmd_export)


def add_import_parser(sub: argparse._SubParsersAction[Parser], workdir: Callable[[Parser], None]) -> None:
    m = sub.add_parser(
        "import",
        help="read a makemore.py checkpoint, a safetensors file or an ARPA file into a work directory",
        description="Read FILE into the work directory WORKDIR (replacing the run it held), for sample, eval, "
        "mix and makemore_jax.load. makemore: a makemore.py model.pt (its state_dict; needs PyTorch) of --type, "
        "with the sizes it was trained with and the vocabulary and block size of the words it was trained on "
        "(-i, as makemore.py builds them). safetensors: a file makemore export wrote. arpa: a character-level "
        "ARPA file (KenLM, SRILM: characters as tokens, a word a sentence), a backoff model that scores words by "
        "the file's backoff rules.",
    )
    workdir(m)
    m.add_argument("--format", choices=IMPORT_FORMATS, required=True, help="the file's format")
    m.add_argument(
        "--type", choices=("bigram", "mlp", "rnn", "gru", "bow", "transformer"), help="makemore: the model's type"
    )
    m.add_argument(
        "-i", "--input-file", metavar="WORDS", help="makemore: the words it was trained on (default: names.txt)"
    )
    for size, default in (("n-layer", 4), ("n-head", 4), ("n-embd", 64), ("n-embd2", 64)):
        m.add_argument(f"--{size}", type=int, default=None, metavar="N", help=f"makemore: (default {default})")
    m.add_argument("file", metavar="FILE", help="the file to read")
    m.set_defaults(run=cmd_import)


def check_output(path: str) -> None:
    """MakemoreError unless path names a file that export may create or replace (see store.userfile).

    Refused: an empty name, a directory, a missing directory, a device, FIFO or
    socket (through symbolic links too), and any work directory's own files.
    Only os.stat and directory listings: nothing is opened, so a FIFO cannot hang it.
    """
    from ..store import userfile

    userfile.check_user_file(path, "FILE")


def cmd_export(args: argparse.Namespace) -> None:
    from .. import api

    check_output(args.file)  # before the model is loaded: a refused FILE costs nothing
    what = api.load(args.work_dir).export(args.file, format=args.format)
    print(f"wrote {args.file}: {what}")


def cmd_import(args: argparse.Namespace) -> None:
    from .. import api

    sizes = {k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd", "n_embd2") if getattr(args, k) is not None}
    if args.format == "makemore":
        model = api.import_model(
            args.file, format="makemore", workdir=args.work_dir, type=args.type, words=args.input_file, **sizes
        )
    else:
        if args.type or args.input_file or sizes:
            raise MakemoreError(f"--type, -i and the sizes are for --format makemore: a {args.format} file has its own")
        model = api.import_model(args.file, format=args.format, workdir=args.work_dir)
    print(f"read {args.file}: {model.fitted.model_def.label(model.fitted.config)}; saved to {args.work_dir}/")
