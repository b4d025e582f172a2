"""Figures about Spaces computed from the event log."""
