#!/usr/bin/env python3
"""pqota_https.py: a tiny HTTPS server in Python whose TLS is libpqota-tls: hybrid
post-quantum key exchange (X25519MLKEM768, profile 2 by default), optional mutual TLS.
Standard library only (socket, threading, ctypes through pqota_tls.py).

    pqota keys init pki                                  # a CA and a server certificate
    PQOTA_TLS_LIB=build/libpqota-tls.so.1 \\
      python3 examples/python/pqota_https.py --pki pki --listen 127.0.0.1:8443
    pqota tls check 127.0.0.1:8443 --ca pki/ca/ca.crt    # group X25519MLKEM768, QUANTUM-SAFE
    python3 examples/python/pqota_fetch.py https://127.0.0.1:8443/ --ca pki/ca/ca.crt

It answers GET and HEAD of / (a fixed page naming the session's group and the client) and
/health; other paths 404, other methods 405. One thread per connection (at most --max-conns
at once), HTTP/1.1 with Connection: close, request heads bounded to 16 KiB. Each
connection's outcome is one line on stdout ("accepted ..." or "rejected ...").
"""

import argparse
import html
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pqota_tls  # noqa: E402  (the binding; it loads the library on first use)

HEAD_MAX = 16 * 1024
PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>pqota: post-quantum HTTPS from Python</title></head>
<body>
<h1>Hello from Python over libpqota-tls</h1>
<p>Key exchange: <code>{group}</code> ({kind}), {protocol}, {cipher}.</p>
<p>Client certificate: {client}.</p>
</body>
</html>
"""
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 431: "Request Header Fields Too Large"}

log_lock = threading.Lock()


def log(line):
    with log_lock:
        print(line, flush=True)


def read_head(conn):
    """The request head (up to the blank line) as bytes; None when the client sent none
    (closed, or timed out); raises ValueError when it exceeds HEAD_MAX."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_MAX:
            raise ValueError("request head too large")
        try:
            chunk = conn.read(4096)
        except pqota_tls.TLSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def parse_request_line(head):
    """(method, path) of a well-formed HTTP/1.x request line; raises ValueError."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ValueError("malformed request line")
    method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
    if not method.isalpha() or not target.startswith("/"):
        raise ValueError("malformed request line")
    return method, target.split("?", 1)[0]


def respond(conn, status, body, content_type="text/plain; charset=utf-8", head_only=False,
            extra=()):
    payload = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {REASONS[status]}",
             f"Content-Type: {content_type}",
             f"Content-Length: {len(payload)}",
             f"X-TLS-Group: {conn.group}",
             "Connection: close", *extra, "", ""]
    conn.write("\r\n".join(lines).encode("ascii") + (b"" if head_only else payload))


def page(conn):
    cn = conn.peer_cn
    return PAGE.format(group=html.escape(conn.group),
                       kind="quantum-safe" if conn.quantum_safe else "classical",
                       protocol=html.escape(conn.protocol), cipher=html.escape(conn.cipher),
                       client=html.escape(cn) if cn else "none")


def serve_http(conn):
    try:
        head = read_head(conn)
    except ValueError:
        respond(conn, 431, "request head too large\n")
        return "431"
    if head is None:
        return "no request"
    try:
        method, path = parse_request_line(head)
    except (ValueError, UnicodeDecodeError):
        respond(conn, 400, "malformed request\n")
        return "400"
    if method not in ("GET", "HEAD"):
        respond(conn, 405, "only GET and HEAD\n", extra=("Allow: GET, HEAD",))
        return f"{method} {path} 405"
    head_only = method == "HEAD"
    if path == "/":
        respond(conn, 200, page(conn), "text/html; charset=utf-8", head_only)
        return f"{method} {path} 200"
    if path == "/health":
        respond(conn, 200, "ok\n", head_only=head_only)
        return f"{method} {path} 200"
    respond(conn, 404, "not found\n", head_only=head_only)
    return f"{method} {path} 404"


def handle(ctx, sock, addr, slots):
    peer = f"{addr[0]}:{addr[1]}"
    try:
        with sock:
            try:
                conn = ctx.accept_fd(sock.fileno())
            except pqota_tls.TLSError as e:
                log(f"rejected {peer}: {e}")
                return
            with conn:
                outcome = "?"
                try:
                    outcome = serve_http(conn)
                except pqota_tls.TLSError as e:
                    outcome = f"error: {e}"
                try:
                    conn.shutdown()  # close_notify; the client may have gone already
                except pqota_tls.TLSError:
                    pass
                log(f"accepted {peer} group={conn.group} protocol={conn.protocol} "
                    f"client={conn.peer_cn or '-'} quantum_safe={'yes' if conn.quantum_safe else 'no'} "
                    f"request={outcome}")
    finally:
        slots.release()


def write_port_file(path, port):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="HTTPS over libpqota-tls (post-quantum TLS 1.3)")
    ap.add_argument("--pki", help="a `pqota keys init` directory: DIR/server/server.{crt,key}, "
                    "DIR/ca/ca.crt")
    ap.add_argument("--cert", help="server certificate (default DIR/server/server.crt)")
    ap.add_argument("--key", help="server key (default DIR/server/server.key)")
    ap.add_argument("--ca", help="CA of client certificates (default DIR/ca/ca.crt)")
    ap.add_argument("--profile", default=pqota_tls.PROFILE_X25519MLKEM768,
                    help="TLS profile, id or name (default %(default)s: X25519MLKEM768 with "
                    "ECDSA P-256 certificates; 7, 8, 9 for ML-DSA ones)")
    ap.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0: any free)")
    ap.add_argument("--port-file", help="write the listening port here once ready")
    mtls = ap.add_mutually_exclusive_group()
    mtls.add_argument("--mtls", action="store_true", help="require a client certificate")
    mtls.add_argument("--mtls-optional", action="store_true",
                      help="ask for a client certificate, also serve clients without one")
    ap.add_argument("--timeout", type=int, default=10000, help="per-connection timeout, ms")
    ap.add_argument("--max-conns", type=int, default=32, help="connections served at once")
    ap.add_argument("--lib", help="libpqota-tls to load (default $PQOTA_TLS_LIB, then the "
                    "loader's search path)")
    a = ap.parse_args(argv)
    if not a.pki and not (a.cert and a.key):
        ap.error("give --pki DIR or --cert and --key")
    a.cert = a.cert or os.path.join(a.pki, "server", "server.crt")
    a.key = a.key or os.path.join(a.pki, "server", "server.key")
    if (a.mtls or a.mtls_optional) and not a.ca:
        if not a.pki:
            ap.error("--mtls needs --ca or --pki")
        a.ca = os.path.join(a.pki, "ca", "ca.crt")
    host, sep, port = a.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        ap.error(f"--listen {a.listen!r} is not HOST:PORT")
    a.host, a.port = host.strip("[]") or "127.0.0.1", int(port)
    return a


def main(argv):
    a = parse_args(argv)
    try:
        pqota_tls.load(a.lib)
        flags = (pqota_tls.CLIENT_CERT_REQUIRED if a.mtls else
                 pqota_tls.CLIENT_CERT_OPTIONAL if a.mtls_optional else 0)
        ctx = pqota_tls.ServerContext(a.profile, a.cert, a.key, a.ca, flags)
        ctx.set_timeout(a.timeout)
    except (OSError, pqota_tls.TLSError) as e:
        print(f"pqota_https: {e}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    srv = socket.create_server((a.host, a.port), family=family, backlog=128)
    port = srv.getsockname()[1]
    _, name, group, _ = pqota_tls.profiles()[pqota_tls.profile_id(a.profile)]
    print(f"pqota_https: listening on {a.host}:{port}, profile {name} (group {group})"
          f"{', mutual TLS' if a.mtls else ''}; libpqota-tls {pqota_tls.version()} on "
          f"{pqota_tls.openssl_version()}", flush=True)
    if a.port_file:
        write_port_file(a.port_file, port)
    slots = threading.BoundedSemaphore(a.max_conns)
    try:
        while True:
            slots.acquire()
            sock, addr = srv.accept()
            threading.Thread(target=handle, args=(ctx, sock, addr, slots), daemon=True).start()
    except KeyboardInterrupt:
        return 0
    finally:
        srv.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
