"""Local service and host probes: processes, ports, TCP, disks, memory, load, backups."""
