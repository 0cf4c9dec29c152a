"""Storage: the event log, the outbox beside the store, and parts kept in modules
of their own (each with its SCHEMA, appended to collector.store.MIGRATIONS)."""
