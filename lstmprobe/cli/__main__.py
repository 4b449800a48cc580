"""``python -m lstmprobe.cli``."""

from lstmprobe.cli import main

main()
