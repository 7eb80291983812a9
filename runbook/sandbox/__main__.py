"""``python3 -m runbook.sandbox ARGS`` is ``runbook sandbox ARGS``."""

import sys

from ..cli import main

main(["sandbox", *sys.argv[1:]], prog_name="runbook")
