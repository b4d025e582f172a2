"""Moderation use cases."""
