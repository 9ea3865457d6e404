"""The HTML report: one self-contained file with every figure embedded, figures also saved beside it.

from valuescope.output.report import RunData, write_report
html_path = write_report([run_a, run_b], Path("out"))
"""

from valuescope.output.report.data import RunData
from valuescope.output.report.render import write_report

__all__ = ["RunData", "write_report"]
