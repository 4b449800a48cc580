"""Loading a user's feature function from a Python file: ``path/to/file.py:func``.

The file is imported by path, which runs the user's own code: that is the point of the spec.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from lstmprobe.errors import FeatureError
from lstmprobe.features.base import Feature, Registry, failure, first_paragraph


def load_user_feature(spec: str, registry: Registry) -> Feature:
    """The feature ``FUNC`` defined in ``FILE.py`` (spec ``FILE.py:FUNC``).

    The function is called as ``FUNC(text)`` on the whole recorded text (or
    ``FUNC(text, sequences=...)`` when it declares that parameter) and must return one value per
    character, NaN where undefined. A function the file decorates with ``@feature("name", ...)``
    (which adds it to ``registry`` as the file runs) keeps that name, kind and definition.
    """
    file_part, _, func_name = spec.rpartition(":")
    path = Path(file_part).expanduser()
    if not func_name.isidentifier():
        raise FeatureError(
            f"{spec!r}: give FILE.py:FUNC with FUNC the name of a function in the file"
        )
    if not path.is_file():
        raise FeatureError(f"feature file {path} does not exist (from {spec!r})")
    module = _load_module(path)
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        names = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise FeatureError(
            f"{path} has no function {func_name!r}; functions there: {', '.join(names) or 'none'}"
        )
    if isinstance(func, Feature):
        return func
    registered = [f for f in registry.features.values() if f.func is func]
    if registered:  # decorated with @feature("name", ...): its name, kind and definition
        return registered[-1]
    doc = first_paragraph(func)
    return Feature(spec, func, None, doc or f"{func_name} from {path}", False)


#: Feature files imported so far, by (resolved path, modification time in ns, size): a file runs
#: once however often its specs are resolved, and again once it is edited.
_LOADED: dict[tuple[str, int, int], ModuleType] = {}


def _load_module(path: Path) -> ModuleType:
    """The module of the feature file ``path``, imported on first use (see :data:`_LOADED`)."""
    resolved = path.resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise FeatureError(f"cannot read feature file {path}: {exc.strerror or exc}") from None
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    if key in _LOADED:
        return _LOADED[key]
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"lstmprobe_user_features_{digest}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise FeatureError(f"cannot import feature file {path}; give a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise FeatureError(failure(f"importing feature file {path} failed", exc)) from exc
    _LOADED[key] = module
    return module
