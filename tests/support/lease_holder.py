"""A stand-in engine for the lease tests: `python -m tests.support.lease_holder
DSN NODE TTL`. It ticks the lease (collector/engine/lease.py) and, while it
leads, writes one fenced row every 20 ms into `fenced_writes` (epoch, node),
each in a transaction of its own that checks the fencing token first. One
JSON line on stdout per change of role and per refused write."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import psycopg

from collector.engine.lease import Fenced, PgLease

TABLE = """CREATE TABLE IF NOT EXISTS fenced_writes (
    id BIGSERIAL PRIMARY KEY, epoch BIGINT NOT NULL, node TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"""


def say(**what) -> None:
    print(json.dumps({**what, "t": time.time()}), flush=True)


def main() -> None:
    dsn, node, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    lease = PgLease(dsn, node=node, ttl=ttl)
    lock = threading.Lock()

    def keep() -> None:
        leading = False
        while True:
            with lock:
                now = lease.tick()
            if now != leading:
                say(event="leading" if now else "standby", epoch=lease.epoch)
                leading = now
            time.sleep(ttl / 5)

    threading.Thread(target=keep, daemon=True).start()
    conn = None
    while True:
        time.sleep(0.02)
        epoch = lease.epoch
        if epoch is None:
            continue
        try:
            if conn is None or conn.closed or conn.broken:
                conn = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
                conn.execute(TABLE)
            with conn.transaction():
                lease.check(conn)
                conn.execute("INSERT INTO fenced_writes (epoch, node) VALUES (%s, %s)",
                             (epoch, node))
        except Fenced as e:
            say(event="fenced", epoch=epoch, why=str(e))
        except psycopg.Error as e:
            say(event="write failed", epoch=epoch, why=str(e).splitlines()[0] if str(e) else "")
            conn = None


if __name__ == "__main__":
    main()
