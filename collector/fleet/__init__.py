"""The fleet: which version and config each branch's agent runs, where its
/metrics are (Prometheus service discovery), and drift from the template."""
