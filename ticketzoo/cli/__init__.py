"""The ``ticketzoo`` command line: a thin click layer over the library."""

from ticketzoo.cli.main import cli, main

__all__ = ["cli", "main"]
