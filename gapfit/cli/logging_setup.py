"""Messages of the command line: the ``gapfit`` logger on standard error, and when to show progress bars.

The library only logs (``logging.getLogger(__name__)``); the command line
decides verbosity here. Progress bars appear only on a terminal, never when
standard error goes to a file or a pipe, and never with ``--quiet``.
"""
import logging
import sys
from contextlib import contextmanager


@contextmanager
def command_logging(verbosity=0, quiet=False, stream=None):
    """``configure_logging`` for the length of one command; the ``gapfit`` logger is restored
    afterwards (handlers, level, propagation), so a command run from Python leaves no trace."""
    logger = logging.getLogger("gapfit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    configure_logging(verbosity, quiet, stream)
    try:
        yield logger
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def configure_logging(verbosity=0, quiet=False, stream=None):
    """Send ``gapfit`` log records to ``stream`` (standard error) as plain lines.

    quiet: warnings and errors only; verbosity 0: informational messages;
    1 or more: debugging messages as well. Returns the ``gapfit`` logger.
    """
    logger = logging.getLogger("gapfit")
    for handler in list(logger.handlers):
        if getattr(handler, "_gapfit_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._gapfit_cli = True
    handler.setFormatter(logging.Formatter("%(message)s" if verbosity < 1
                                           else "%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbosity >= 1 else logging.INFO)
    logger.propagate = False
    return logger


def show_progress(quiet=False, stream=None):
    """True when progress bars are wanted: not quiet, and ``stream`` (standard error) is a terminal."""
    stream = stream or sys.stderr
    if quiet:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
