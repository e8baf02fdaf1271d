"""Harness for a real containerd, started and stopped by the tests (see tests/harness/common.py)."""
