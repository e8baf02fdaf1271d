"""Harness for a real postgres, started and stopped by the tests (see tests/harness/common.py)."""
