"""``python -m storage.provisioner``: the same as ``sharedvol serve``."""

import argparse

from storage.provisioner import cli

parser = argparse.ArgumentParser(prog="python -m storage.provisioner")
cli.register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["serve", *__import__("sys").argv[1:]])
raise SystemExit(args.func(args))
