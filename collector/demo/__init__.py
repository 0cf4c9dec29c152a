"""`branchwatch demo`: the collector, three simulated branches and a data centre
(one province, domain.md §2.1) in one process.

Nothing is installed and nothing runs as root. The real collector (its API,
incident book, grading, runbooks and reports) runs on an embedded config;
four real agents watch simulated equipment: a upsd (agent/sim/nut_server.py),
SNMP switches (agent/sim/snmp_switch.py), TCP far sides of each branch's lines
and a core-system service per branch. A story (story.py) plays on them and
reads back from the collector's API what it made of it.

    config.py    the embedded collector and agent configs
    network.py   TCP far sides and services the story controls
    branch.py    one simulated branch: its UPS, switch, lines and core system
    client.py    the collector's API as the demo operator uses it
    views.py     an incident from the API, read for the story
    narrator.py  what is printed, with timestamps and progress
    story.py     the stage: pacing, the collector's clock, reading back, reports
    acts.py      the story: power cut, line cut, province outage
    run.py       start everything, play, keep the console up, stop cleanly
"""
