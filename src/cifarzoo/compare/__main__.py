"""``python -m cifarzoo.compare ...``, the same as ``cifarzoo compare ...``."""

from .cli import main

raise SystemExit(main())
