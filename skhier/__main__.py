"""``python -m skhier``: the ``skhier`` command."""

import sys

from skhier.cli import main

if __name__ == "__main__":
    sys.exit(main())
