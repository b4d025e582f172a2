"""Typed configuration from environment variables."""
