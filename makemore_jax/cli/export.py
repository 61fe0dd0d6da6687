"""`makemore export`: a counting or n-gram model as a file other tools read (ARPA: KenLM, SRILM).

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

FORMATS = ("arpa",)
Parser = TypeVar("Parser", bound=argparse.ArgumentParser)


def add_export_parser(sub: argparse._SubParsersAction[Parser], workdir: Callable[[Parser], None]) -> None:
    x = sub.add_parser(
        "export",
        help="write a counting or n-gram model as an ARPA file (KenLM, SRILM)",
        description="Write the model in WORKDIR to FILE in a format other tools read. ARPA (the format of KenLM "
        "and SRILM): characters are the tokens and each word a sentence, <s> before it and </s> after it; a "
        "reader that scores words by standard backoff gets the model's own probabilities. Counting models "
        "(--type counts) and n-gram models (--type ngram: add-k, Kneser-Ney, modified Kneser-Ney) only.",
    )
    workdir(x)
    x.add_argument("--format", choices=FORMATS, default="arpa", help="file format (default: arpa)")
    x.add_argument(
        "file", metavar="FILE", help="the file to write (replaced if it exists; a symbolic link is written through)"
    )
    x.set_defaults(run=cmd_export)


def check_output(path: str) -> None:
    """MakemoreError unless path names a file that export may create or replace (see store.userfile).

    Refused: an empty name, a directory, a missing directory, a device, FIFO or
    socket (through symbolic links too), and any work directory's own files.
    Only os.stat and directory listings: nothing is opened, so a FIFO cannot hang it.
    """
    from ..store import userfile

    userfile.check_user_file(path, "FILE")


def cmd_export(args: argparse.Namespace) -> None:
    from ..models.ngram import arpa
    from ..store import checkpoint, userfile

    check_output(args.file)  # before the model is loaded: a refused FILE costs nothing
    model = checkpoint.load(args.work_dir, "model").fitted
    text, counts = arpa.arpa_text(model)
    userfile.write_user_file(args.file, text.encode("utf-8"), "FILE")  # checks again, then writes through links
    listed = ", ".join(f"{n:,} {k}-grams" for k, n in enumerate(counts, start=1))
    print(f"wrote {args.file}: ARPA, order {len(counts)} ({listed})")
