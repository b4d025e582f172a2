"""The PresenceService gRPC API."""
