"""The hospital's information-system plan (domain.md §2.3; hospital §3, §4, §5.5, §6.4).

  settings.py       the config's `hospital:` section (the core, its share, where the
                    whole-network outage is kept) and the rules a type cannot say
  outage.py         whole-network outage: observed on the core, or declared by IT (pure)
  notices.py        the departments' notices: milestones, IT's start of manual work
                    and the time to resume (pure)
  restore_tests.py  the monthly restore test: its register and when the next is due
  desk.py           the above on the incident desk, on the writer thread
  http.py, cli.py   the API and `branchwatch hospital ...`
"""
