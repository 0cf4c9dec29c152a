"""Reports to the regulator, drawn from an incident (issue 7; domain.md §3).

- written (第二十八條): the formal written report, due 12 h after the start;
- progress (第二十七條): for grade I every 2 h until the end (what changed);
- summary (第三十四條): the closing summary with the handling review and timeline.

`model.build` turns an incident (incident_codec.to_dict) into a report's
fields (pure; machine facts plus the fields only a person can fill);
`render` gives Markdown, HTML and, where WeasyPrint and Noto CJK are
installed, PDF, from one Jinja2 template per language and kind;
`storage` keeps drafts and issued reports (frozen); `desk` is what the
API runs on the writer thread. See docs/reports.md.
"""

KINDS = ("written", "progress", "summary")
