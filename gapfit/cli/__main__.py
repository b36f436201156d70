"""``python -m gapfit.cli``: the ``gapfit`` command."""
import sys

from .commands import main

sys.exit(main())
