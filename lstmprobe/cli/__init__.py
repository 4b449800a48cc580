"""The ``lstmprobe`` command line: thin click commands over the library.

One module per stage of the pipeline; each command parses its arguments, calls the library and
prints. Errors from the library (:class:`~lstmprobe.errors.LstmprobeError`) become one line on
stderr and exit status 1; usage errors are click's (exit 2).
"""

from __future__ import annotations

import click

from lstmprobe.cli import causal, interop, lm, neurons, patching, record, report


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lstmprobe")
def main() -> None:
    """Open up trained LSTMs and GRUs.

    \b
    Record every gate and state of a model over a corpus, find the neurons that
    track properties of the text, and show them:
        lstmprobe record model.pt corpus.txt      # writes ./acts.h5
        lstmprobe find-neurons --feature quote    # reads ./acts.h5
        lstmprobe info                            # what a recording holds
        lstmprobe report                          # writes ./acts.report.html
    """


for _command in (
    record.record,
    record.info,
    record.consolidate_command,
    record.bench,
    lm.demo,
    lm.tasks_command,
    lm.train_command,
    lm.sample_command,
    lm.evaluate_command,
    lm.models_command,
    neurons.features_command,
    neurons.find_neurons_command,
    report.report_command,
    report.plot_command,
    causal.ablate_command,
    causal.dynamics_command,
    causal.profile_command,
    patching.patch_command,
    patching.attribute_command,
    interop.export_command,
    interop.import_group,
):
    main.add_command(_command)
