"""Views moderation builds from the log."""
