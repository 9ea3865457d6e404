"""Analysis: tidy tables, scoring and the metric families."""
