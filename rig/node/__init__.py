"""The real node on this machine: its configuration, start and stop (``python -m rig.node.realnode``)."""
