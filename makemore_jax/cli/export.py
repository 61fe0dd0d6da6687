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

FORMATS = ("arpa", "safetensors")
IMPORT_FORMATS = ("safetensors",)
Parser = TypeVar("Parser", bound=argparse.ArgumentParser)


def add_export_parser(sub: argparse._SubParsersAction[Parser], workdir: Callable[[Parser], None]) -> None:
    x = sub.add_parser(
        "export",
        help="write the model as an ARPA (KenLM, SRILM) or safetensors file",
        description="Write the model in WORKDIR to FILE in a format other tools read. arpa (the format of KenLM "
        "and SRILM): characters are the tokens and each word a sentence, <s> before it and </s> after it; a "
        "reader that scores words by standard backoff gets the model's own probabilities; counting models "
        "(--type counts) and n-gram models only. safetensors: the model's arrays, with its type, settings and "
        "vocabulary in the file's metadata (makemore import reads it back exactly).",
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
        help="read a model file (safetensors) into a work directory",
        description="Read FILE into the work directory WORKDIR (replacing the run it held), for sample, eval, "
        "mix and makemore_jax.load. safetensors: a file makemore export wrote.",
    )
    workdir(m)
    m.add_argument("--format", choices=IMPORT_FORMATS, required=True, help="the file's format")
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

    model = api.import_model(args.file, format=args.format, workdir=args.work_dir)
    print(f"read {args.file}: {model.fitted.model_def.label(model.fitted.config)}; saved to {args.work_dir}/")
