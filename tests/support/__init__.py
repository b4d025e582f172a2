"""Helpers for integration tests: brokers, databases, service processes, tokens and channels.

The fixtures in `tests/conftest.py` are thin wrappers around these, so a test
(or a benchmark) that needs something the fixtures do not give can use them directly.
"""
