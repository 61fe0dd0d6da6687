"""The one exception type for mistakes a user can make."""


class MakemoreError(Exception):
    """A problem caused by input, flags or files, not by a bug.

    The command line prints it as one line on stderr and exits with status 2.
    """


def counted(n: int, noun: str) -> str:
    """'1 word', '2,000 words': a count and its noun, for messages."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"
