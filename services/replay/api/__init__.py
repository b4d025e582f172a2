"""Spaces Replay."""
