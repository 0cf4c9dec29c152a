"""branchwatch agent: watches a branch's UPS, switches and services."""

__version__ = "0.1.0"
