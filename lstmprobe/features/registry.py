"""The default feature registry: the ``@feature`` decorator, :func:`get_feature`, :func:`known_features`.

The one place the built-ins are registered: :func:`default_registry` builds the registry on first
use from the tables of :mod:`lstmprobe.features.builtins` and :mod:`lstmprobe.features.regex`
(their ``register_all``); a ``FILE.py:FUNC`` spec is loaded by :mod:`lstmprobe.features.user`.
Nothing is registered by importing a module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from lstmprobe.errors import FeatureError
from lstmprobe.features import builtins, regex, user
from lstmprobe.features.base import Feature, FeatureFunc, Kind, Registry
from lstmprobe.features.stream import Scanner

_DEFAULT: Registry | None = None
_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The registry ``get_feature`` and ``@feature`` use: the built-ins, then your features."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            registry = Registry()
            builtins.register_all(registry)
            regex.register_all(registry)
            _DEFAULT = registry
        return _DEFAULT


def feature(
    name: str,
    *,
    kind: Kind | None = None,
    definition: str | None = None,
    per_sequence: bool = False,
    stream: Callable[[], Scanner] | None = None,
    hint: str = "",
) -> Callable[[FeatureFunc], FeatureFunc]:
    """Register ``func(text) -> array`` as the feature ``name``; returns ``func`` unchanged.

    The definition shown by ``lstmprobe features`` defaults to the first line of the docstring.
    ``per_sequence=True`` computes it on each recorded sequence separately, and ``stream``
    (a factory of :class:`~lstmprobe.features.stream.Scanner`) lets a long sequence be labelled
    piece by piece in bounded memory; see :class:`~lstmprobe.features.base.Feature`.

    Examples
    --------
    >>> import numpy as np
    >>> @feature("vowel", kind="binary")
    ... def vowel(text: str) -> np.ndarray:
    ...     '''The char just read is a vowel.'''
    ...     return np.array([c in "aeiou" for c in text], dtype=float)
    >>> get_feature("vowel").labels("hat").tolist()
    [0.0, 1.0, 0.0]
    """
    return default_registry().feature(
        name,
        kind=kind,
        definition=definition,
        per_sequence=per_sequence,
        stream=stream,
        hint=hint,
    )


def known_features() -> dict[str, str]:
    """Every feature name and family (``char:X``) with its definition, built-ins first."""
    known = default_registry().known()
    known["FILE.py:FUNC"] = (
        "A function in your own Python file, called as FUNC(text) -> one value per character "
        "(NaN = undefined); the file is imported, so it runs your code."
    )
    return known


def get_feature(spec: str | Feature) -> Feature:
    """The :class:`~lstmprobe.features.base.Feature` a spec names;
    :class:`~lstmprobe.errors.FeatureError` if none.

    Examples
    --------
    >>> get_feature("quote").name
    'quote'
    >>> get_feature("next-char:b").kind
    'binary'
    """
    if isinstance(spec, Feature):
        return spec
    if not isinstance(spec, str) or not spec:
        raise FeatureError(f"a feature spec must be a non-empty string, got {spec!r}")
    registry = default_registry()
    found = registry.lookup(spec)
    if found is not None:
        return found
    if ".py:" in spec:
        return user.load_user_feature(spec, registry)
    names = ", ".join(k for k in known_features() if k != "FILE.py:FUNC")
    raise FeatureError(
        f"unknown feature {spec!r}; known: {names}, or FILE.py:FUNC for your own function "
        "(`lstmprobe features` shows the definitions)"
    )


__all__ = ["default_registry", "feature", "get_feature", "known_features"]
