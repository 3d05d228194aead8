"""The basement shared by every floor of sharedvol: what storage/, steps/ and pipelines/ all stand on.

It holds only what all three need and none may take from another (the floors above it never import each
other downwards-up): the base of the error hierarchy, and settings filled from command-line flags.

The floors are checked by ``make lint`` (lint-imports, the contracts in pyproject.toml): pipelines/ above steps/ and
storage/, which stand side by side and never import each other, on sharedvol/; storage/ without torch, steps/
without kubernetes; and no two modules of one package importing each other, directly or around a cycle.
"""
