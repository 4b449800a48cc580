"""The bundled models (lstmprobe/models/bundled.py): c-lstm reads tab-indented code."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.lm import evaluation as ev
from lstmprobe.models import bundled, load_model
from lstmprobe.store import ActivationStore

# Our own tab-indented C, not from the training headers.
C_SOURCE = """/* count the words of a line */
#include <stdio.h>
#define MAXLINE 1000

int
count_words(const char *line)
{
\tint n = 0, in_word = 0;

\tfor (; *line != '\\0'; line++) {
\t\tif (*line == ' ' || *line == '\\t' || *line == '\\n') {
\t\t\tin_word = 0;
\t\t} else if (!in_word) {
\t\t\tin_word = 1;
\t\t\tn++;
\t\t}
\t}
\treturn n;
}
"""


def test_c_lstm_has_a_tab_and_predicts_tab_indented_c():
    assert "c-lstm" in bundled.MODELS
    assert bundled.model_path("c-lstm").stat().st_size <= 1_000_000
    loaded = load_model("c-lstm")
    assert "\t" in loaded.vocab.chars and set(C_SOURCE) <= set(loaded.vocab.chars)
    uniform = np.log2(len(loaded.vocab))
    bpc = ev.bits_per_char(loaded.model, loaded.vocab, C_SOURCE * 3)
    assert bpc < uniform - 2, (bpc, uniform)
    # code-lstm has no tab: the same text is refused there, with the way out named
    assert "\t" not in load_model("code-lstm").vocab.chars


def test_c_lstm_records_tab_indented_code_and_finds_the_preprocessor(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(C_SOURCE * 6)
    store = tmp_path / "acts.h5"
    runner = CliRunner()
    refused = runner.invoke(
        main, ["record", "code-lstm", str(corpus), "-o", str(tmp_path / "x.h5")]
    )
    assert refused.exit_code == 1 and "--unknown" in refused.stderr
    result = runner.invoke(main, ["record", "c-lstm", str(corpus), "-o", str(store), "-q"])
    assert result.exit_code == 0, result.output
    with ActivationStore(store) as s:
        assert s.n_positions == len(C_SOURCE) * 6
        assert np.isfinite(s.next_logprob[:-1]).all()
    ranked = runner.invoke(
        main, ["find-neurons", "--store", str(store), "-f", "preprocessor", "--no-probe", "--json"]
    )
    assert ranked.exit_code == 0, ranked.output
