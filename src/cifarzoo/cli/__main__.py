"""``python -m cifarzoo.cli``: the same as the ``cifarzoo`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
