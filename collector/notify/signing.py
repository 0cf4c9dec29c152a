"""Signed acknowledgement links: valid for one incident and one person.

The signature is HMAC-SHA256 over ("ack", incident, person) with the
collector's secret (notify.ack_secret or ack_secret_file), base64url without
padding. It carries no expiry: an incident stops taking acks once closed,
and a new secret withdraws every link at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def read_secret(secret: str | None, secret_file: str | None) -> bytes | None:
    """The secret from config, or the file's first line; None when neither is set.
    OSError/ValueError when the file is unreadable or too short."""
    if secret_file is not None:
        from agent.credentials import read_secret as read_file    # systemd's copy if passed
        text = read_file(secret_file)
        if len(text) < 16:
            raise ValueError(f"{secret_file}: expected a secret of at least 16 characters")
        return text.encode("utf-8")
    return None if secret is None else secret.encode("utf-8")


def signature(secret: bytes, incident: str, person: str) -> str:
    """The link's signature for this incident and person."""
    mac = hmac.new(secret, b"\0".join([b"ack", incident.encode(), person.encode()]),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def valid(secret: bytes, incident: str, person: str, sig: str) -> bool:
    """Whether `sig` is this incident's and this person's (constant time)."""
    return hmac.compare_digest(signature(secret, incident, person).encode(),
                               sig.encode("utf-8", "replace"))


def ack_url(base: str, secret: bytes, incident: str, person: str) -> str:
    """The link a person's message carries: GET shows a page, its button POSTs."""
    return (f"{base.rstrip('/')}/api/v1/ack/{quote(incident, safe='')}/"
            f"{signature(secret, incident, person)}?by={quote(person, safe='')}")
