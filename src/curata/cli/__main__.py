"""`python -m curata.cli`: the `curata` command."""

import sys

from curata.cli.main import command_line

if __name__ == "__main__":
    sys.exit(command_line())
