"""The HTML report: one self-contained file with every figure embedded, figures also saved beside it.

from valuescope.report import RunData, write_report
html_path = write_report([run_a, run_b], Path("out"))
"""

from valuescope.report.data import RunData
from valuescope.report.render import write_report

__all__ = ["RunData", "write_report"]
