"""The read side: rebuilding views from the event log."""
