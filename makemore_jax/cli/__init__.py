"""The ``makemore`` command. (``main`` is the console entry point)."""

from .commands import main

__all__ = ["main"]
