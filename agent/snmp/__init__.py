"""SNMP: switches, UPS network cards, traps and port actions."""
