"""The files and places a collector config names, looked at before the collector
starts and by `check-config`: each problem one line naming the
key and what was expected."""

from __future__ import annotations

import ssl

from agent.config_check import writable_place
from agent.credentials import credential_path, file_problem

from .config import Config, ConfigError


def collector_file_problems(c: Config):
    """Yields 'key: problem' for every named file the collector could not use."""
    for key in ("tls_cert", "tls_key"):
        value = getattr(c.listen, key)
        if value is not None and (why := file_problem(value)):
            yield f"listen.{key}: {why}"
    if c.listen.tls_cert and c.listen.tls_key and not any(
            file_problem(v) for v in (c.listen.tls_cert, c.listen.tls_key)):
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                credential_path(c.listen.tls_cert), credential_path(c.listen.tls_key))
        except (ssl.SSLError, OSError) as e:
            yield (f"listen.tls_cert: expected a PEM certificate and the key of it "
                   f"(listen.tls_key): {getattr(e, 'reason', None) or e}")
    if (why := writable_place(c.storage.data_dir, is_dir=True)) is not None:
        yield f"storage.data_dir: {why}"
    if c.storage.postgresql is not None:
        try:
            c.store_dsn()
        except ConfigError as e:
            yield str(e)
    if c.audit.key_file is not None:
        try:
            c.audit_key()
        except ConfigError as e:
            yield str(e)
    if c.audit.checkpoint_file is not None:
        if (why := writable_place(c.audit.checkpoint_file)) is not None:
            yield f"audit.checkpoint_file: {why}"
    if c.notify.ack_secret_file is not None and (why := file_problem(c.notify.ack_secret_file)):
        yield f"notify.ack_secret_file: {why}"


def summary(c: Config) -> str:
    """One line of what a collector config sets up."""
    return (f"collector on {c.listen.address}:{c.listen.port}, {len(c.agents)} agents, "
            f"{len(c.operators)} operators, {len(c.console.users)} console users, "
            f"data in {_where(c)}")


def _where(c: Config) -> str:
    if c.storage.postgresql is None:
        return c.storage.data_dir
    return f"PostgreSQL (DSN in {c.storage.postgresql.dsn_file})"
