"""The presence service: who is connected to which Space, right now."""
