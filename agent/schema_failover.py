"""Config schema for the automatic uplink failover (issue 6).

Split from config.py like schema_network.py: this module owns the struct
and its semantic rules; config.py owns loading and error wording.

    failover:
      primary: primary          # lines[].name, with an uplink
      backup: backup            # lines[].name, with an uplink listed in actions.ports
      hold: 30                  # s the primary must be down before failing over
      return_after: 600         # s the primary must be healthy before swapping back
      max_swaps_per_hour: 4     # swaps (either way) in any rolling hour
      verify_timeout: 30        # s for the new line's targets to answer after a swap
"""

from __future__ import annotations

import typing

import msgspec

from .schema_network import Line, Name, Seconds, Switch, _S


class Failover(_S):
    """Swap to the backup line on a line fault and back when the primary is healthy."""

    primary: Name
    backup: Name
    hold: Seconds = 30.0
    return_after: Seconds = 600.0
    max_swaps_per_hour: typing.Annotated[int, msgspec.Meta(ge=1)] = 4
    verify_timeout: Seconds = 30.0


def failover_problems(f: Failover, lines: list[Line], switches: list[Switch],
                      key: str = "failover"):
    """Rules a type cannot say for `failover:`; yields (key, problem)."""
    if f.primary == f.backup:
        yield f"{key}.backup", f"expected another line than the primary, got {f.backup!r}"
        return
    by_name = {line.name: line for line in lines}
    for role in ("primary", "backup"):
        name = getattr(f, role)
        line = by_name.get(name)
        if line is None:
            known = ", ".join(sorted(by_name)) or "none configured"
            yield f"{key}.{role}", f"expected the name of a line in lines: ({known}), got {name!r}"
        elif line.uplink is None:
            yield f"{key}.{role}", (f"line {name!r} has no uplink: {{switch, interface}}; "
                                    f"the failover needs the switch port it enters through")
    primary, backup = by_name.get(f.primary), by_name.get(f.backup)
    if primary is None or backup is None or primary.uplink is None or backup.uplink is None:
        return
    p, b = primary.uplink, backup.uplink
    if (p.switch, p.interface) == (b.switch, b.interface):
        yield f"{key}.backup", (f"line {f.backup!r} enters through the same port as the primary "
                                f"(switch {b.switch} port {b.interface})")
    # domain.md §4 (第三條(二)): only a pre-authorised (預授權) step runs by
    # itself; for a port, that is being listed in its switch's actions.ports.
    index = next((i for i, s in enumerate(switches) if s.name == b.switch), None)
    if index is None:
        return   # lines[].uplink.switch already names the problem
    actions = switches[index].actions
    if actions is None or b.interface not in actions.ports:
        yield f"{key}.backup", (f"the backup uplink (switch {b.switch} port {b.interface}) is not "
                                f"pre-authorised (預授權) for actions: list {b.interface!r} under "
                                f"switches[{index}].actions.ports")
