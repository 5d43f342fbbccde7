"""
C{python -m soukets}: the same as the C{soukets} command.
"""

from soukets.cli import main

main()
