"""Beside the production line: the reject signal (reject.py, sinks.py) and live metrics (metrics.py)."""
