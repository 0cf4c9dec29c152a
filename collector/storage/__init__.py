"""Storage parts kept in modules of their own (each with its SCHEMA, appended to
collector.store.MIGRATIONS)."""
