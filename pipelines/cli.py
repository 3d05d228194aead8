"""The ``sharedvol`` command.

The top floor of the house: it owns ``compile``, ``submit``, ``run`` and ``demo`` and hands
``doctor/provision/release/serve`` to :mod:`storage.cli` and ``data/train/test/metrics`` to
:mod:`steps.cli`. Each handler imports its heavy libraries only when it is called, so
``sharedvol --help`` and ``sharedvol doctor`` start without torch or kfp.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pipelines import commands, errors, run_cli
from sharedvol.errors import one_line
from steps import cli as steps_cli
from steps import errors as steps_errors
from storage import cli as storage_cli
from storage import errors as storage_errors

EXPECTED_ERRORS = (errors.PipelineError, storage_errors.StorageError, steps_errors.StepError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``sharedvol`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="sharedvol",
        description="A shared ReadWriteMany volume for Kubeflow Pipelines steps, and the ResNet-18/CIFAR-10 "
        "pipeline that uses it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    storage_cli.register(sub)
    steps_cli.register(sub)
    commands.register(sub)
    run_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``sharedvol`` command; expected failures print one line and return non-zero."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.raiseExceptions = False  # a log write that fails (a full disk) is not a traceback on stderr
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except EXPECTED_ERRORS as e:
        print(f"sharedvol {args.command}: error: {e}", file=sys.stderr)  # one line: sharedvol.errors.Error
        return 2
    except OSError as e:  # a file, directory or device no layer above expected: still one line, no traceback
        print(f"sharedvol {args.command}: error: {os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sharedvol {args.command}: interrupted", file=sys.stderr)
        return 130


def os_error(e: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to check."""
    what = e.strerror or str(e) or type(e).__name__
    paths = " -> ".join(repr(str(p)) for p in (e.filename, e.filename2) if p is not None)
    if not paths:
        return one_line(f"{what}: check the free space and the permissions where this command writes, then run again")
    return one_line(f"{what} ({paths}): check that path (its type, its permissions, the free space), then run again")


if __name__ == "__main__":
    raise SystemExit(main())
