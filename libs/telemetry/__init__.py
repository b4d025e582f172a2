"""Logging and tracing set up the same way in every process."""
