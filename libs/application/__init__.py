"""Running commands against event-sourced streams."""
