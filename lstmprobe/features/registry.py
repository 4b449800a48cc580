"""The default feature registry: the ``@feature`` decorator, :func:`get_feature`, :func:`known_features`.

The one place the built-ins are registered: :data:`DEFAULT` is filled here from the tables of
:mod:`lstmprobe.features.builtins`, :mod:`lstmprobe.features.prose`,
:mod:`lstmprobe.features.regex` and :mod:`lstmprobe.features.sequence` (their
``register_all``); a ``FILE.py:FUNC`` spec is loaded by :mod:`lstmprobe.features.user`, and a
condition ``FEATURE@WHERE`` is built from its two specs (:func:`~lstmprobe.features.sequence.condition`). Importing
a module that defines features registers nothing anywhere else.
"""

from __future__ import annotations

from lstmprobe.errors import FeatureError
from lstmprobe.features import builtins, prose, regex, sequence, user
from lstmprobe.features.base import Feature, Registry

#: The registry get_feature and ``@feature`` use: the built-ins, then your features.
DEFAULT = Registry()
builtins.register_all(DEFAULT)
prose.register_all(DEFAULT)
regex.register_all(DEFAULT)
sequence.register_all(DEFAULT)

#: ``@feature("name", kind=..., definition=..., per_sequence=..., stream=..., hint=...)``
#: registers a function in :data:`DEFAULT` (:meth:`~lstmprobe.features.base.Registry.feature`).
feature = DEFAULT.feature


def default_registry() -> Registry:
    """:data:`DEFAULT`, the registry ``get_feature``, ``find-neurons`` and ``@feature`` use."""
    return DEFAULT


def known_features() -> dict[str, str]:
    """Every feature name and family (``char:X``) with its definition, built-ins first."""
    known = DEFAULT.known()
    known["FEATURE@WHERE"] = (
        "FEATURE where WHERE is on (defined and not 0), undefined (NaN) elsewhere, e.g. "
        "count:a@char:Y (N at the Y), next-char:b@after:X (in the copy half); the spec splits "
        "at its last @ that a feature spec follows."
    )
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
    parts = None if spec in registry.features else sequence.split_condition(spec, _names_feature)
    if parts is not None:
        return sequence.condition(get_feature(parts[0]), get_feature(parts[1]), spec)
    found = registry.lookup(spec)
    if found is not None:
        return found
    if ".py:" in spec:
        return user.load_user_feature(spec, registry)
    names = ", ".join(k for k in known_features() if k not in ("FILE.py:FUNC", "FEATURE@WHERE"))
    raise FeatureError(
        f"unknown feature {spec!r}; known: {names}, FEATURE@WHERE for one feature where "
        "another is on, or FILE.py:FUNC for your own function "
        "(`known_features()` lists them with their definitions)"
    )


def _names_feature(spec: str) -> bool:
    """Whether ``spec`` starts like a feature spec: a name or a family of the default registry,
    or a ``FILE.py:FUNC`` (what may follow the ``@`` of a condition)."""
    head, colon, _ = spec.partition(":")
    return spec in DEFAULT.features or bool(colon and head in DEFAULT.families) or ".py:" in spec


__all__ = ["DEFAULT", "default_registry", "feature", "get_feature", "known_features"]
