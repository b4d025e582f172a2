"""The ModerationService gRPC API."""
