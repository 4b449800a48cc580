from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from lstmprobe.errors import ReportError
from lstmprobe.report.output import atomic_output, check_writable, compact, uint8_b64


def test_codes_round_trip_through_base64():
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16).T  # not contiguous
    back = np.frombuffer(base64.b64decode(uint8_b64(codes)), np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(back, codes)


def test_compact_values_are_valid_json_without_nan():
    obj = {"x": [np.float32(0.123456789), np.int64(3), float("inf")], "t": (1.0, None)}
    text = json.dumps(compact(obj), allow_nan=False)
    assert json.loads(text) == {"x": [0.12346, 3, None], "t": [1.0, None]}


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "r.html"
    with pytest.raises(RuntimeError), atomic_output(target) as part:
        part.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ReportError, match="does not exist"):
        check_writable(tmp_path / "missing" / "r.html")
