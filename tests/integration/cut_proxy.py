#!/usr/bin/env python3
"""cut_proxy.py: a TCP proxy for tests of dropped connections (standard library only).

usage: cut_proxy.py TARGET_PORT PORT_FILE CUT_AFTER_BYTES [LOG_FILE [down]]

Listens on 127.0.0.1 (a free port, written to PORT_FILE once it listens) and forwards
every connection to 127.0.0.1:TARGET_PORT. Once CUT_AFTER_BYTES bytes in all have gone from
clients to the target, the connection carrying that byte is cut (both sides reset, the
bytes after it never forwarded), once; later connections pass untouched. LOG_FILE gets a
line "cut after N bytes" when it happened. With "down", the bytes counted are those from
the target to the clients (a download cut instead of an upload)."""
import os
import selectors
import socket
import struct
import sys

target = int(sys.argv[1])
port_file = sys.argv[2]
cut_after = int(sys.argv[3])
log_file = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
down = len(sys.argv) > 5 and sys.argv[5] == "down"

sent = 0
cut_done = False
sel = selectors.DefaultSelector()
peer = {}


def reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    close(s)


def close(s):
    if s in peer:
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        del peer[s]
        s.close()


def pump(src, upstream):
    global sent, cut_done
    counted = upstream != down
    dst = peer.get(src)
    try:
        data = src.recv(1 << 20)
    except OSError:
        data = b""
    if not data or dst is None:
        close(src)
        if dst is not None:
            close(dst)
        return
    if counted and not cut_done and sent + len(data) >= cut_after:
        keep = cut_after - sent
        try:
            dst.sendall(data[:keep])
        except OSError:
            pass
        cut_done = True
        sent = cut_after
        if log_file:
            with open(log_file, "a") as f:
                f.write("cut after %d bytes\n" % cut_after)
        reset(src)
        reset(dst)
        return
    if counted:
        sent += len(data)
    try:
        dst.setblocking(True)
        dst.sendall(data)
        dst.setblocking(False)
    except OSError:
        close(src)
        close(dst)


def accept(ls):
    c, _ = ls.accept()
    u = socket.create_connection(("127.0.0.1", target))
    for s in (c, u):
        s.setblocking(False)
    peer[c] = u
    peer[u] = c
    sel.register(c, selectors.EVENT_READ, True)
    sel.register(u, selectors.EVENT_READ, False)


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
tmp = port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(tmp, port_file)
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            accept(ls)
        elif key.fileobj in peer:
            pump(key.fileobj, key.data)
