"""The protobuf contracts: code generation and the registry of event types."""
