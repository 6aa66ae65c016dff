"""The desktop bundle's program: the `workbench` command (the app when run without arguments) and its child modes."""

import sys

from workbench.frozen import main

if __name__ == "__main__":
    sys.exit(main())
