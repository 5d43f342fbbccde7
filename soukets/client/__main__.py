"""
C{python -m soukets.client}: the same as C{soukets-client}.
"""

from soukets.client.cli import main

main()
