"""Entry point of the frozen desktop bundle: the ``workbench`` command plus the hidden child modes.

See :mod:`workbench.core.child` for why the bundle's executable must also act as the app's child processes.
"""

from __future__ import annotations

import sys

from workbench.core.child import FROZEN_CHILD_FLAG


def run_child(name: str, args: list[str]) -> int:
    """Run child ``name`` in this process, as ``python -m workbench.core.loader`` / ``python server.py`` would."""
    if name == "loader":
        from multiprocessing.connection import Connection

        from workbench.core.loader import _serve

        _serve(Connection(int(args[0])), tuple(args[1:]))
        return 0
    if name == "agent":
        from workbench.agent import server

        return server.main(args)
    print(f"error: unknown child process '{name}'", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [FROZEN_CHILD_FLAG] and len(argv) >= 2:
        return run_child(argv[1], argv[2:])
    from workbench.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
