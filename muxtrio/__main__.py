"""``python -m muxtrio``: the same command line as the ``muxtrio`` console script (see :mod:`muxtrio.cli`)."""

from __future__ import annotations

from muxtrio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
