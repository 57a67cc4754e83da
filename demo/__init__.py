"""``make demo``: the platform end to end on the native local stack, then a summary (demo/run.py)."""
