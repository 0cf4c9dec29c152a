"""The agent's /metrics listener: prometheus-client's WSGI app, optionally over
TLS and behind HTTP basic auth, in a daemon thread.

prometheus-client serves TLS itself but has no basic auth; a small WSGI
wrapper checks the Authorization header against the configured user and the
sha256 of its password (as the collector stores tokens: the password Prometheus
sends is a long random secret, so a plain digest is enough, and the config
holds no secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):          # scrapes are not news
        pass


def basic_auth(app, user: str, password_sha256: str):
    """`app` behind HTTP basic auth for one user; others get 401 and a challenge."""
    want_user = user.encode("utf-8")

    def guarded(environ, start_response):
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            except ValueError:
                name, password = b"", b""
            digest = hashlib.sha256(password).hexdigest()
            # Both compares always run: the answer's timing says nothing of which failed.
            ok = hmac.compare_digest(name, want_user) & hmac.compare_digest(digest, password_sha256)
        if not ok:
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("WWW-Authenticate", 'Basic realm="branchwatch"')])
            return [b"unauthorized\n"]
        return app(environ, start_response)
    return guarded


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer); with `client_ca`, client certificates
    signed by it are required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class TlsFilesError(Exception):
    """The certificate, key or client CA cannot be loaded (the reason, one line)."""


def start_metrics_server(listen, registry) -> tuple[ThreadingWSGIServer, str]:
    """Serve `registry` at listen.address:listen.port; returns the server and its URL.
    TlsFilesError for unusable TLS files, OSError when the address cannot be bound."""
    ctx = None
    if listen.tls_cert is not None:
        try:
            ctx = tls_context(listen.tls_cert, listen.tls_key, listen.tls_client_ca)
        except ssl.SSLError as e:
            raise TlsFilesError(f"not a certificate and its key: {e.reason or e}") from None
        except OSError as e:
            raise TlsFilesError(e.strerror or str(e)) from None
    app = make_wsgi_app(registry)
    if listen.basic_auth is not None:
        app = basic_auth(app, listen.basic_auth.user, listen.basic_auth.password_sha256)

    class Server(ThreadingWSGIServer):
        address_family = _family(listen.address)

    httpd = make_server(listen.address, listen.port, app, Server, handler_class=_QuietHandler)
    scheme = "http"
    if ctx is not None:
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    host, port = httpd.server_address[:2]
    host = f"[{host}]" if ":" in host else host
    return httpd, f"{scheme}://{host}:{port}/metrics"


def _family(address: str):
    import socket
    return socket.AF_INET6 if ":" in address else socket.AF_INET
