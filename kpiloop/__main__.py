"""``kpiloop`` entry point. Hook commands are dispatched before anything heavy is imported."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``kpiloop`` command line; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hook"]:
        from kpiloop.hooks import main as hook_main  # stdlib only: hooks must start fast

        return hook_main(args[1:])
    from kpiloop.cli import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
