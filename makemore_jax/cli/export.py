"""`makemore export`: a counting or n-gram model as a file other tools read (ARPA: KenLM, SRILM).

Mistakes (a format it does not know, a FILE it cannot write, a model that is
no n-gram table) end as one line and exit status 2, with nothing written.
The file is written whole or not at all (a temporary file, then a rename).
The package is imported only when the command runs, as in ``commands``.
"""

from __future__ import annotations

import os

from ..errors import MakemoreError

FORMATS = ("arpa",)


def add_export_parser(sub, workdir) -> None:
    x = sub.add_parser(
        "export", help="write a counting or n-gram model as an ARPA file (KenLM, SRILM)",
        description="Write the model in WORKDIR to FILE in a format other tools read. ARPA (the format of KenLM "
        "and SRILM): characters are the tokens and each word a sentence, <s> before it and </s> after it; a "
        "reader that scores words by standard backoff gets the model's own probabilities. Counting models "
        "(--type counts) and n-gram models (--type ngram: add-k, Kneser-Ney, modified Kneser-Ney) only.",
    )
    workdir(x)
    x.add_argument("--format", choices=FORMATS, default="arpa", help="file format (default: arpa)")
    x.add_argument("file", metavar="FILE", help="the file to write (replaced if it exists)")
    x.set_defaults(run=cmd_export)


def check_output(path: str) -> None:
    """MakemoreError unless path names a file that can be created or replaced in an existing directory."""
    if not path:
        raise MakemoreError("FILE is empty: name the file to write")
    if os.path.isdir(path):
        raise MakemoreError(f"{path} is a directory: name a file to write")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise MakemoreError(f"{path}: directory {os.path.dirname(path) or directory} does not exist")


def cmd_export(args) -> None:
    from ..models.ngram import arpa
    from ..store import checkpoint

    check_output(args.file)
    model = checkpoint.load(args.work_dir, "model").model
    text, counts = arpa.arpa_text(model)
    try:
        checkpoint.atomic_write(args.file, text.encode("utf-8"))
    except OSError as err:
        raise MakemoreError(f"{args.file}: cannot write ({err.strerror or err})") from None
    listed = ", ".join(f"{n:,} {k}-grams" for k, n in enumerate(counts, start=1))
    print(f"wrote {args.file}: ARPA, order {len(counts)} ({listed})")
