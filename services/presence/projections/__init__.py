"""Views presence builds from the log."""
