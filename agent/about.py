"""What an agent tells the collector about itself in every heartbeat: its
version, a hash of its config as rendered from the fleet's template, and
where Prometheus can scrape its /metrics.

The hash leaves out the agent's identity (id, branch, region): every branch
rendered from one template (an Ansible role, say) has the same hash, so a
branch whose hash differs from its fleet's has drifted from the template.
"""

from __future__ import annotations

import hashlib

import msgspec

from . import __version__, wire
from .config import Config


# Secrets differ per branch even from one template (and are read into the config
# from their files at start: agent/credentials.py): never part of the hash.
SECRETS = frozenset({"token", "password", "community", "auth_key", "priv_key"})


def _without_secrets(value):
    if isinstance(value, dict):
        return {k: None if k in SECRETS else _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def template_sha256(config: Config) -> str:
    """sha256 of the config without the agent's identity and its secrets, keys in
    a fixed order."""
    data = _without_secrets(msgspec.to_builtins(config))
    data.pop("agent", None)
    return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()


def about(config: Config, metrics_url: str | None) -> wire.AgentAbout:
    """This agent's version, template hash and /metrics endpoint."""
    m = config.metrics
    scheme = "https" if m.tls_cert is not None else "http"
    port = m.port
    if metrics_url is not None:          # the bound port (metrics.port 0 picks one)
        port = int(metrics_url.rsplit(":", 1)[1].split("/", 1)[0])
    return wire.AgentAbout(version=__version__, config_sha256=template_sha256(config),
                           metrics=wire.MetricsEndpoint(scheme=scheme, port=port,
                                                        advertise=m.advertise))
