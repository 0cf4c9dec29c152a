"""The operators' web console (issue 8): server-rendered pages with htmx, served
by the collector under /console/."""
