"""Reachability of the gateway and core systems over each uplink line.

`ping.probe_target` measures one target (ICMP echo, or TCP connect where
the kernel refuses unprivileged ICMP); `probe.LineProbe` grades every
target of a line and says whose fault an outage is (domain.md §4.1).
"""
