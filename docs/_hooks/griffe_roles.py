"""A griffe extension (mkdocs.yml: mkdocstrings' ``extensions``): Sphinx roles become links.

The docstrings name other objects the Sphinx way, ``:class:`~lstmprobe.store.ActivationStore```
or ``:func:`rank_units```, which Markdown would show as they are written. Each role becomes an
optional mkdocstrings cross-reference: a link where the object has a page, its name in code
type where it has none (a private helper, a NumPy function). A name that is not a full path is
looked up from the object outwards (its members, its parent's, its module's) as Sphinx does.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const|type):`(~?)([\w.]+)(?:\(\))?`"
)


def _lookup(obj: Object, name: str, loader: Any) -> str:
    """The full path ``name`` means where ``obj`` says it; ``name`` itself when unknown."""
    scopes = []
    current: Any = obj
    while current is not None:
        scopes.append(current.path)
        current = current.parent
    for scope in scopes:
        path = f"{scope}.{name}"
        try:
            loader.modules_collection.get_member(path)
        except Exception:  # not there, or an alias griffe cannot follow (a stdlib import)
            continue
        return path
    return name


class SphinxRoles(Extension):
    """Rewrite Sphinx roles in every docstring as optional cross-references."""

    def on_object(self, *, obj: Object, loader: Any, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is None or ":`" not in doc.value:
            return

        def link(match: re.Match[str]) -> str:
            short, name = match.group(1) == "~", match.group(2)
            target = _lookup(obj, name, loader)
            shown = html.escape(name.rsplit(".", 1)[-1] if short else name)
            return f'<autoref identifier="{html.escape(target)}" optional><code>{shown}</code></autoref>'

        doc.value = ROLE.sub(link, doc.value)
