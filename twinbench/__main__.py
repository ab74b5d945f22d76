"""``python -m twinbench check ...``: the console command without its script (twinbench/cli.py)."""

import sys

from twinbench.cli import main

sys.exit(main())
