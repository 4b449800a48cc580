"""The default feature registry: the ``@feature`` decorator, :func:`get_feature`, :func:`known_features`.

The one place the built-ins are registered: :data:`DEFAULT` is filled here from the tables of
:mod:`lstmprobe.features.builtins`, :mod:`lstmprobe.features.prose` and
:mod:`lstmprobe.features.regex` (their
``register_all``); a ``FILE.py:FUNC`` spec is loaded by :mod:`lstmprobe.features.user`. Importing
a module that defines features registers nothing anywhere else.
"""

from __future__ import annotations

from lstmprobe.errors import FeatureError
from lstmprobe.features import builtins, prose, regex, user
from lstmprobe.features.base import Feature, Registry

#: The registry get_feature and ``@feature`` use: the built-ins, then your features.
DEFAULT = Registry()
builtins.register_all(DEFAULT)
prose.register_all(DEFAULT)
regex.register_all(DEFAULT)

#: ``@feature("name", kind=..., definition=..., per_sequence=..., stream=..., hint=...)``
#: registers a function in :data:`DEFAULT` (:meth:`~lstmprobe.features.base.Registry.feature`).
feature = DEFAULT.feature


def default_registry() -> Registry:
    """:data:`DEFAULT`, the registry ``get_feature``, ``find-neurons`` and ``@feature`` use."""
    return DEFAULT


def known_features() -> dict[str, str]:
    """Every feature name and family (``char:X``) with its definition, built-ins first."""
    known = DEFAULT.known()
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
    registry = DEFAULT
    found = registry.lookup(spec)
    if found is not None:
        return found
    if ".py:" in spec:
        return user.load_user_feature(spec, registry)
    names = ", ".join(k for k in known_features() if k != "FILE.py:FUNC")
    raise FeatureError(
        f"unknown feature {spec!r}; known: {names}, or FILE.py:FUNC for your own function "
        "(`known_features()` lists them with their definitions)"
    )


__all__ = ["DEFAULT", "default_registry", "feature", "get_feature", "known_features"]
