"""The ``gapfit`` command line: argument parsing, settings files and logging; every command
calls the library and holds no logic of its own."""
from .commands import main  # noqa: F401
