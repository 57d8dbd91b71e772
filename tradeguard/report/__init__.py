"""``tradeguard report``: an HTML page with PNG charts and tables, read from the store alone.

Nothing here talks to a broker or imports a plugin: the report works on the file a replay or a
run left behind, also while the run is still going.
"""

from tradeguard.report.render import write_report

__all__ = ["write_report"]
