"""Presence rules over one Space: heartbeats, reconnects, timeouts, counts. Pure."""
