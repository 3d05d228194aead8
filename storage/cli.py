"""Subcommands of ``sharedvol`` (filled in by their owners)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``sharedvol`` parser."""
