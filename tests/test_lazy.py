from __future__ import annotations

import sys
import types

import pytest

import lstmprobe
import lstmprobe.report
from lstmprobe._lazy import lazy_exports


@pytest.fixture
def package():
    pkg = sys.modules["lazy_demo"] = types.ModuleType("lazy_demo")
    yield pkg
    del sys.modules["lazy_demo"]


def test_a_name_loads_its_module_on_first_use_and_is_kept(package):
    getattr_, dir_ = lazy_exports(
        "lazy_demo", {"dumps": "json", "Fraction": "fractions"}, ["b", "a"]
    )
    package.__getattr__, package.__dir__ = getattr_, dir_
    import json

    assert "dumps" not in vars(package)
    assert package.dumps is json.dumps
    assert vars(package)["dumps"] is json.dumps  # the next lookup is a plain attribute
    assert dir(package) == ["a", "b"]
    with pytest.raises(AttributeError, match="module 'lazy_demo' has no attribute 'loads'"):
        package.loads  # noqa: B018


def test_the_packages_export_what_their_modules_define():
    from lstmprobe.probes import rank_units
    from lstmprobe.report.colors import scale_for

    assert lstmprobe.rank_units is rank_units
    assert lstmprobe.report.scale_for is scale_for
    assert dir(lstmprobe) == sorted(lstmprobe.__all__)
    assert dir(lstmprobe.report) == sorted(lstmprobe.report.__all__)
    for pkg in (lstmprobe, lstmprobe.report):
        with pytest.raises(AttributeError, match=f"module '{pkg.__name__}' has no attribute"):
            pkg.no_such_name  # noqa: B018
