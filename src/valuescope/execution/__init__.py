"""Execution: prompt building, executors (local, Ray), sequential administration, the runner."""
