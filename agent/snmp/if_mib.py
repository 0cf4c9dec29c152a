"""What the switch probe reads, as data: system group and IF-MIB OIDs, status codes.

Numeric OIDs only: pysnmp and Debian ship no IF-MIB text (realstack.md).
RFC 1213 (system group, ifTable) and RFC 2863 (IF-MIB, ifXTable).
"""

from __future__ import annotations

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"      # TimeTicks: hundredths of a second, 32 bits
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYSTEM = {"sysName": SYS_NAME, "sysDescr": SYS_DESCR, "sysUpTime": SYS_UPTIME}

_IF = "1.3.6.1.2.1.2.2.1."          # ifTable (ifEntry)
_IFX = "1.3.6.1.2.1.31.1.1.1."      # ifXTable (ifXEntry)

# Column name -> OID. Rows are indexed by ifIndex.
COLUMNS = {
    "ifDescr": _IF + "2",
    "ifSpeed": _IF + "5",
    "ifAdminStatus": _IF + "7",
    "ifOperStatus": _IF + "8",
    "ifInOctets": _IF + "10",
    "ifInDiscards": _IF + "13",
    "ifInErrors": _IF + "14",
    "ifOutOctets": _IF + "16",
    "ifOutErrors": _IF + "20",
    "ifName": _IFX + "1",
    "ifHCInOctets": _IFX + "6",
    "ifHCOutOctets": _IFX + "10",
    "ifHighSpeed": _IFX + "15",
    "ifAlias": _IFX + "18",
}
IF_DESCR, IF_NAME, IF_ALIAS = COLUMNS["ifDescr"], COLUMNS["ifName"], COLUMNS["ifAlias"]
IF_ADMIN_STATUS, IF_OPER_STATUS = COLUMNS["ifAdminStatus"], COLUMNS["ifOperStatus"]

# How an InterfaceSpec selector maps onto a column (index is the row itself).
SELECTOR_COLUMN = {"name": "ifName", "descr": "ifDescr", "alias": "ifAlias"}

# ifSpeed saturates at 2^32-1 on links faster than 4.29 Gbit/s: read ifHighSpeed.
IF_SPEED_MAX = 4_294_967_295

# Exported counter (metric name without _total) -> (64-bit column, 32-bit column).
# None: IF-MIB has no 64-bit version, so the 32-bit one is always used.
COUNTERS = {
    "branchwatch_interface_in_octets": ("ifHCInOctets", "ifInOctets"),
    "branchwatch_interface_out_octets": ("ifHCOutOctets", "ifOutOctets"),
    "branchwatch_interface_in_errors": (None, "ifInErrors"),
    "branchwatch_interface_in_discards": (None, "ifInDiscards"),
    "branchwatch_interface_out_errors": (None, "ifOutErrors"),
}
ERROR_COUNTERS = ("branchwatch_interface_in_errors", "branchwatch_interface_out_errors")
DISCARD_COUNTERS = ("branchwatch_interface_in_discards",)

# ifAdminStatus (RFC 2863): code -> name.
ADMIN_STATUS = {1: "up", 2: "down", 3: "testing"}

# ifOperStatus (RFC 2863): code -> (name, counts as up, what a person reads).
# notPresent and lowerLayerDown carry no traffic: they are treated as down.
# "up" None: the device itself does not know.
OPER_STATUS: dict[int, tuple[str, bool | None, str]] = {
    1: ("up", True, "up"),
    2: ("down", False, "down"),
    3: ("testing", False, "testing: the port is in a test mode and passes no traffic"),
    4: ("unknown", None, "the device reports the port's status as unknown"),
    5: ("dormant", False, "dormant: the port waits for an external event to come up"),
    6: ("notPresent", False, "down"),
    7: ("lowerLayerDown", False, "down"),
}
OPER_DOWN = (2, 6, 7)
