#!/usr/bin/env python3
"""pqota_fetch.py: fetch one HTTPS URL over libpqota-tls (post-quantum TLS 1.3), the client
side of pqota_https.py. Standard library only.

    python3 examples/python/pqota_fetch.py https://127.0.0.1:8443/ --ca pki/ca/ca.crt \\
        [--cert pki/vehicles/VIN123/client.crt --key pki/vehicles/VIN123/client.key]

The body goes to stdout; the session (group, protocol, server certificate) and the status
line to stderr. Exit 0 for a 2xx answer, 1 for another HTTP status, 2 when the connection
or the TLS handshake failed (the server's certificate not issued by --ca, say), 64 usage.
"""

import argparse
import os
import sys
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pqota_tls  # noqa: E402

BODY_MAX = 64 * 1024 * 1024


def fetch(conn, host, path):
    """(status, headers text, body) of GET path."""
    conn.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pqota_fetch.py\r\n"
               "Connection: close\r\n\r\n".encode("ascii"))
    data = b""
    while True:
        chunk = conn.read(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > BODY_MAX:
            raise ValueError("answer larger than 64 MiB")
    head, sep, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    return int(parts[1]), head.decode("latin-1"), body


class Usage(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"pqota_fetch: {message}", file=sys.stderr)
        sys.exit(64)


def main(argv):
    ap = Usage(description="GET an https:// URL over libpqota-tls")
    ap.add_argument("url")
    ap.add_argument("--ca", required=True, help="CA that issued the server certificate")
    ap.add_argument("--cert", help="client certificate (mutual TLS)")
    ap.add_argument("--key", help="client key")
    ap.add_argument("--profile", default=pqota_tls.PROFILE_X25519MLKEM768,
                    help="TLS profile, id or name (default %(default)s)")
    ap.add_argument("--name", help="server name to verify and send as SNI (default: the host)")
    ap.add_argument("--timeout", type=int, default=10000, help="timeout, ms")
    ap.add_argument("--lib", help="libpqota-tls to load")
    a = ap.parse_args(argv)
    u = urlsplit(a.url)
    if u.scheme != "https" or not u.hostname:
        ap.error(f"{a.url!r} is not an https:// URL")
    if (a.cert is None) != (a.key is None):
        ap.error("--cert and --key go together")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    host_header = u.netloc.rsplit("@", 1)[-1]
    try:
        pqota_tls.load(a.lib)
        ctx = pqota_tls.ClientContext(a.profile, a.ca, a.cert, a.key)
        ctx.set_timeout(a.timeout)
        with ctx.connect(u.hostname, u.port or 443, a.name) as conn:
            print(f"tls: {conn.protocol} group={conn.group} cipher={conn.cipher} "
                  f"server_sigalg={conn.peer_sigalg} server={conn.peer_subject} "
                  f"sha256={conn.peer_sha256}", file=sys.stderr)
            status, head, body = fetch(conn, host_header, path)
    except (OSError, pqota_tls.TLSError, ValueError) as e:
        print(f"pqota_fetch: {a.url}: {e}", file=sys.stderr)
        return 2
    print(head.split("\r\n", 1)[0], file=sys.stderr)
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
