"""Storage: the event log, and (next) the outbox beside the store."""
