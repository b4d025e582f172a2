"""The RoomService gRPC API: protobuf in, commands and queries, protobuf out."""
