"""The presence stream processor (faust) and its wiring."""
