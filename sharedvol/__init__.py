"""The basement shared by every floor of sharedvol: what storage/, steps/ and pipelines/ all stand on.

It holds only what all three need and none may take from another (the floors above it never import each
other downwards-up): the base of the error hierarchy, and settings filled from command-line flags.
"""
