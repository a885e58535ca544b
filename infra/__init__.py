"""Infrastructure: building blocks (settings, NATS, JetStream, ClickHouse, HTTP), the composition root
(bootstrap), the operator tools (operator/) and the test doubles (doubles/)."""
