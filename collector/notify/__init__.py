"""Notifications (issue 7, "Alerting"): who hears about an incident, by which
channel, and when, until someone acknowledges it.

The core is pure and runs on the writer thread with the incident book:
  routing.py     which route an alert takes, which roles it reaches
  pipeline.py    the stages, one signature: route -> suppress -> dedup -> send -> record
  escalation.py  what is due as time passes: escalation levels, deadline reminders,
                 held alerts whose mute ended, Alertmanager refreshes
  state.py       what an incident keeps (level, who was notified, deliveries)
  messages.py    the text of a message (templates/*.yaml) and the Alertmanager alert
The edges:
  notifier.py    the pipeline built from config, as the incident desk uses it
  dispatch.py    one queue and retry loop per channel, on the event loop
  channels.py    Apprise (email, WeCom, DingTalk, SMS, any URL), JSON webhook,
                 Alertmanager forwarder
  signing.py     signed acknowledgement links
  intake.py      Alertmanager's webhook -> events
  http.py        the ack link and Alertmanager webhook endpoints
Only the collector imports this package; Apprise is imported by channels.py alone.
"""
