"""The `curata` command and the demo."""

from curata.cli.main import main

__all__ = ["main"]
