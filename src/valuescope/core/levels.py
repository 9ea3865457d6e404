"""The error rate of every interval valuescope reports: one number, read by the metrics (percentile, jackknife and t
intervals), the effects grid, the report's adjusted intervals, power and the ``power --alpha`` default."""

from __future__ import annotations

ALPHA = 0.05  #: two-sided: 95% intervals, tests at 5%
