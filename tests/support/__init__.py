"""Real components for tests: upsd, Prometheus, free ports, the test data."""
