"""Simulated devices for the demo and the tests."""
