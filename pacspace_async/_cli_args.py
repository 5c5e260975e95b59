"""Argument types shared by the ``pacspace`` subcommands: a bad value is a one-line usage error."""

from __future__ import annotations

import argparse
import math

__all__ = ["seconds"]


def seconds(text: str) -> float:
    """A number of seconds above 0 (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if math.isnan(value) or value <= 0 or value == math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value
