"""The real KFP 2.17 backend and UI on the real node (``python -m rig.kfp up|down``)."""
