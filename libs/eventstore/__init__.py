"""The write side of the event log: events, outbox and idempotency in PostgreSQL, and the relay to Kafka."""
