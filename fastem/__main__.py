"""``python -m fastem``: the same as the ``fastem`` command."""

import sys

from fastem.cli import main

if __name__ == "__main__":
    sys.exit(main())
