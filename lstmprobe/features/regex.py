"""The ``regex:PATTERN`` feature family: 1 on every char inside a match."""

from __future__ import annotations

import re

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.features.base import Feature, Registry

_TABLE = Registry()


def _regex(text: str, pattern: re.Pattern[str]) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    for m in pattern.finditer(text):
        out[m.start() : m.end()] = 1.0
    return out


@_TABLE.family(
    "regex",
    "1 on every char inside a match of the Python regular expression PATTERN (re.finditer, "
    "non-overlapping, per sequence; empty matches mark nothing), else 0.",
    "PATTERN",
)
def _regex_family(spec: str, arg: str) -> Feature:
    try:
        pattern = re.compile(arg)
    except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999} overflows
        raise FeatureError(
            f"{spec!r}: the regular expression does not compile: {exc}; check the pattern "
            "(quote it for the shell)"
        ) from None
    return Feature(
        spec,
        lambda t: _regex(t, pattern),
        "binary",
        f"1 on every char inside a match of /{arg}/, else 0.",
        True,
    )


def register_all(registry: Registry) -> None:
    """Add the ``regex:PATTERN`` family to ``registry``."""
    registry.update(_TABLE)
