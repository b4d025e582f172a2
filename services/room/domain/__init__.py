"""The room domain: Space lifecycle, membership and roles. Pure: no I/O, no clocks, no gRPC."""
