"""Progress bars: drawn on a terminal only, so that logs and pipes get no fragments."""

from __future__ import annotations

import io
import sys

import pytest

from lstmprobe._io import on_terminal, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, drawn", [(io.StringIO(), False), (Terminal(), True)])
def test_a_bar_is_drawn_only_on_a_terminal(monkeypatch, stream, drawn) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "stderr", stream)
    with progress_bar(1000, desc="work", unit="step") as bar:
        for _ in range(1000):
            bar.update(1)
    assert bool(stream.getvalue()) == drawn
    assert ("\r" in stream.getvalue()) == drawn


def test_a_closed_or_odd_stream_is_no_terminal() -> None:
    closed = io.StringIO()
    closed.close()
    assert not on_terminal(closed) and not on_terminal(object())
