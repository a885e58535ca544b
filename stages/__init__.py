"""Pure stage logic: no NATS, no HTTP edge, no I/O. Imports only ``schemas``."""
