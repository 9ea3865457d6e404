"""Output: the report, figures, exports and the Python API."""
