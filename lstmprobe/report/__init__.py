"""The report stage: figures of units and a self-contained HTML report with an explorer.

Nothing here is imported by ``import lstmprobe``; matplotlib and seaborn are imported inside the
figure functions (:mod:`lstmprobe.report.figures`), so the command line starts fast.
"""

from __future__ import annotations
