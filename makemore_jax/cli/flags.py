"""Flags shared by the commands: numbers checked as they are parsed, the device flag."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..seeding import MAX_SEED

AddWorkdir = Callable[[argparse.ArgumentParser], None]  # adds -o/--work-dir to a command's parser
Number = TypeVar("Number", int, float)

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[Any]  # what build_parser's add_subparsers gives


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
seed_int = _number(int, lambda v: 0 <= v <= MAX_SEED, f"an integer in 0..{MAX_SEED}")
unit_float = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def add_device_flag(p: argparse.ArgumentParser) -> None:
    from ..training.parallel import PLATFORMS

    p.add_argument("--device", choices=PLATFORMS, help="kind of device to compute on (default: JAX's default backend)")
