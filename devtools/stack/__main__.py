"""``python -m devtools.stack up|status|down`` (the command line is ``devtools.stack.cli``)."""

import sys

from devtools.stack.cli import main

if __name__ == "__main__":
    sys.exit(main())
