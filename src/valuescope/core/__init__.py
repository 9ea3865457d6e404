"""Core: plain types, errors and progress reporting; imports nothing of valuescope."""
