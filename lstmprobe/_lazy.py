"""Names of a package that load their module on first use (PEP 562), written once.

``import lstmprobe`` and ``import lstmprobe.report`` stay cheap: a name listed in the package's
table imports its module (torch, h5py, matplotlib...) only when it is first looked up, and is then
kept in the package's namespace, so the next lookup costs nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of name to module
        Each lazily loaded name and the module it is taken from.
    public : iterable of str
        What ``dir(package)`` lists (its ``__all__``).

    Examples
    --------
    >>> import types, sys
    >>> pkg = sys.modules["demo_pkg"] = types.ModuleType("demo_pkg")
    >>> pkg.__getattr__, pkg.__dir__ = lazy_exports("demo_pkg", {"sqrt": "math"}, ["sqrt"])
    >>> pkg.sqrt(9.0), "sqrt" in vars(pkg)  # loaded once, then kept
    (3.0, True)
    >>> del sys.modules["demo_pkg"]
    """
    listed = sorted(public)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return list(listed)

    return __getattr__, __dir__
