"""A login spray against a collector's console, as its own process (so the
sprayers' threads do not share the measuring process's interpreter lock).

`python -m tests.support.spray URL CLIENTS TRIES` runs CLIENTS threads, each
sending TRIES wrong passwords to /console/login, every try from a new
loopback source address (127.1.C.N) for a new made-up name: the worst case
for a throttle, which can slow no single source or name, so only the
bounded password hasher stands between the spray and the event loop. It
prints one JSON line: {"statuses": {code: count}, "tries": n}.
"""

from __future__ import annotations

import collections
import http.client
import json
import sys
import threading
import urllib.parse


def spray(url: str, clients: int, tries: int) -> dict:
    """Run the spray; the count of each answer's status."""
    u = urllib.parse.urlsplit(url)
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def one(c: int) -> None:
        for n in range(tries):
            source = f"127.1.{c}.{n % 250 + 1}"
            body = urllib.parse.urlencode({"user": f"guess-{c}-{n}", "password": "wrong-guess"})
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60,
                                              source_address=(source, 0))
            try:
                conn.request("POST", "/console/login", body.encode(),
                             {"Content-Type": "application/x-www-form-urlencoded"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except OSError as e:
                status = f"error {type(e).__name__}"
            finally:
                conn.close()
            with lock:
                counts[str(status)] += 1

    threads = [threading.Thread(target=one, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"statuses": dict(counts), "tries": clients * tries}


if __name__ == "__main__":
    print(json.dumps(spray(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), flush=True)
