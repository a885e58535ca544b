"""Infrastructure: settings, embedded NATS and ClickHouse, JetStream declarations, supervisor, CLI."""
