"""``kpiloop`` entry point. Hook commands are dispatched before anything heavy is imported."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``kpiloop`` command line; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    from kpiloop.cli import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
