"""The event envelope, the registry of event types, and the topics they travel on."""
