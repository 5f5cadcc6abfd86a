"""``python -m cifarzoo.compare ...``, the same as ``cifarzoo compare ...``."""

from ..cli.compare import main

raise SystemExit(main())
