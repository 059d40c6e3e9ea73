"""``python -m hat_plugin``: the command line, see :mod:`hat_plugin.cli`."""

import sys

from hat_plugin.cli import main

if __name__ == "__main__":
    sys.exit(main())
