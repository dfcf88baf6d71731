"""The `curata` command and the demo."""

from curata.cli.main import command_line, main

__all__ = ["command_line", "main"]
