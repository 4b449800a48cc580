"""Features: per-character labels of a text (built-ins, regex, your own functions).

A feature maps the corpus to one value per character describing the state AFTER reading that
character, as the stored activations do; NaN marks positions where it is undefined. See
docs/features.md.

Examples
--------
>>> get_feature("bracket-depth").labels("f(a[1])").tolist()
[0.0, 1.0, 1.0, 2.0, 2.0, 1.0, 0.0]
"""

from __future__ import annotations

from lstmprobe.features.base import Feature, Kind, Registry
from lstmprobe.features.registry import default_registry, feature, get_feature, known_features

__all__ = [
    "Feature",
    "Kind",
    "Registry",
    "default_registry",
    "feature",
    "get_feature",
    "known_features",
]
