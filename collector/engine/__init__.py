"""The engine: applies the event log to the incident book from a stored cursor."""
