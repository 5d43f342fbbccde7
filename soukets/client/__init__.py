"""
The terminal client: play soukets games and use its channels without typing
JSON (C{soukets-client}, or C{python -m soukets.client}).
"""
