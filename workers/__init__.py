"""Wiring: one FastStream app per stage binding pure stage logic to its NATS subject, plus the sink."""
