"""Views of Spaces rebuilt from the room topic."""
