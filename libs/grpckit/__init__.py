"""The gRPC server kit: auth, error mapping, health, reflection and graceful drain."""
