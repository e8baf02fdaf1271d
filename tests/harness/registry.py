"""Harness for a real registry, started and stopped by the tests (see tests/harness/common.py)."""
