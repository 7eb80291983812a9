"""Allow ``python -m runbook``."""

from .cli import main

main(prog_name="runbook")
