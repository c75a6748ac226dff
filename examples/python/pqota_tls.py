"""pqota_tls: post-quantum TLS 1.3 for Python through libpqota-tls (ctypes, standard library
only).

    import pqota_tls
    lib = pqota_tls.load()                  # $PQOTA_TLS_LIB, else libpqota-tls.so.1
    ctx = pqota_tls.ServerContext("mlkem768-ecdsa-p256", "server.crt", "server.key")
    conn = ctx.accept_fd(sock.fileno())     # sock: a socket.accept()ed connection
    conn.group                              # "X25519MLKEM768"

Load the library before anything that loads the system's OpenSSL (the ssl and hashlib
modules, and what imports them: http.client, urllib.request, ...): libssl.so.3 is loaded
once per process, and the library needs the OpenSSL >= 3.5 its RPATH names. load() checks.

The C API is include/pqota/tls.h; docs/tls-library.md describes both.
"""

import ctypes
import os
import sys

PROFILE_X25519MLKEM768 = "mlkem768-ecdsa-p256"  # profile 2: the hybrid group, ECDSA P-256

CLIENT_CERT_REQUIRED = 1
CLIENT_CERT_OPTIONAL = 2

_lib = None


class TLSError(Exception):
    """A failed call: .status is the negative pqota_tls_status, .name its description,
    str() the library's detail."""

    def __init__(self, status, detail):
        self.status = status
        self.name = _lib.pqota_tls_strerror(status).decode() if _lib else str(status)
        super().__init__(f"{self.name}: {detail}" if detail else self.name)


def _declare(lib):
    vp, cp, ci, cl, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_long, ctypes.c_size_t
    pvp = ctypes.POINTER(vp)
    sigs = {
        "pqota_tls_version": (cp, []),
        "pqota_tls_abi": (ci, []),
        "pqota_tls_openssl_version": (cp, []),
        "pqota_tls_strerror": (cp, [ci]),
        "pqota_tls_last_error": (cp, []),
        "pqota_tls_profile_count": (ci, []),
        "pqota_tls_profile_find": (ci, [cp]),
        "pqota_tls_profile_name": (cp, [ci]),
        "pqota_tls_profile_group": (cp, [ci]),
        "pqota_tls_profile_sigalg": (cp, [ci]),
        "pqota_tls_server_new": (ci, [cp, cp, cp, cp, ctypes.c_uint, pvp]),
        "pqota_tls_client_new": (ci, [cp, cp, cp, cp, ctypes.c_uint, pvp]),
        "pqota_tls_ctx_set_timeout": (ci, [vp, ci]),
        "pqota_tls_ctx_free": (None, [vp]),
        "pqota_tls_accept": (ci, [vp, ci, pvp]),
        "pqota_tls_accept_fd": (ci, [vp, ci, pvp]),
        "pqota_tls_connect": (ci, [vp, cp, cp, cp, pvp]),
        "pqota_tls_connect_fd": (ci, [vp, ci, cp, pvp]),
        "pqota_tls_read": (cl, [vp, vp, sz]),
        "pqota_tls_write": (cl, [vp, vp, sz]),
        "pqota_tls_shutdown": (ci, [vp]),
        "pqota_tls_close": (None, [vp]),
        "pqota_tls_fd": (ci, [vp]),
        "pqota_tls_group": (cp, [vp]),
        "pqota_tls_protocol": (cp, [vp]),
        "pqota_tls_cipher": (cp, [vp]),
        "pqota_tls_peer_sigalg": (cp, [vp]),
        "pqota_tls_quantum_safe": (ci, [vp]),
        "pqota_tls_peer_cn": (cp, [vp]),
        "pqota_tls_peer_subject": (cp, [vp]),
        "pqota_tls_peer_sha256": (cp, [vp]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def load(path=None):
    """Loads libpqota-tls once: path, else $PQOTA_TLS_LIB, else libpqota-tls.so.1 from the
    loader's search path. Raises OSError when it cannot be loaded or runs on an OpenSSL
    without ML-KEM (another OpenSSL was loaded into the process first)."""
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(path or os.environ.get("PQOTA_TLS_LIB") or "libpqota-tls.so.1")
    _declare(lib)
    if lib.pqota_tls_abi() != 1:
        raise OSError(f"libpqota-tls ABI {lib.pqota_tls_abi()}, this binding speaks 1")
    _lib = lib
    ossl = openssl_version()
    major_minor = tuple(int(x) for x in ossl.split()[1].split(".")[:2])
    if major_minor < (3, 5):
        raise OSError(f"libpqota-tls runs on {ossl}: load it before the ssl or hashlib "
                      "modules, so that it gets the OpenSSL >= 3.5 it was built with")
    return lib


def _text(p):
    return p.decode("utf-8", "replace") if p is not None else None


def _check(status):
    if status < 0:
        raise TLSError(status, _text(_lib.pqota_tls_last_error()))
    return status


def _path(p):
    return os.fsencode(p) if p is not None else None


def version():
    return _text(load().pqota_tls_version())


def openssl_version():
    return _text(load().pqota_tls_openssl_version())


def profile_id(id_or_name):
    """The id of a profile given as its id or name; TLSError when there is none."""
    return _check(load().pqota_tls_profile_find(str(id_or_name).encode()))


def profiles():
    """[(id, name, group, signature scheme)] for the 13 profiles."""
    lib = load()
    return [(i, _text(lib.pqota_tls_profile_name(i)), _text(lib.pqota_tls_profile_group(i)),
             _text(lib.pqota_tls_profile_sigalg(i))) for i in range(lib.pqota_tls_profile_count())]


class Connection:
    """One TLS connection; close() it (or use `with`). Not for two threads at once."""

    _h = None

    def __init__(self, handle):
        self._h = handle

    def _handle(self):
        if not self._h:
            raise TLSError(-10, "the connection is closed")
        return self._h

    def read(self, n=16384):
        """Up to n bytes; b"" when the peer closed the connection cleanly."""
        buf = ctypes.create_string_buffer(n)
        got = _check(_lib.pqota_tls_read(self._handle(), buf, n))
        return buf.raw[:got]

    def write(self, data):
        """Writes all of data (bytes)."""
        data = bytes(data)
        return _check(_lib.pqota_tls_write(self._handle(), data, len(data)))

    def shutdown(self):
        _check(_lib.pqota_tls_shutdown(self._handle()))

    def close(self):
        if self._h and _lib is not None:
            _lib.pqota_tls_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _str(self, fn):
        return _text(fn(self._handle()))

    group = property(lambda self: self._str(_lib.pqota_tls_group))
    protocol = property(lambda self: self._str(_lib.pqota_tls_protocol))
    cipher = property(lambda self: self._str(_lib.pqota_tls_cipher))
    peer_sigalg = property(lambda self: self._str(_lib.pqota_tls_peer_sigalg))
    peer_cn = property(lambda self: self._str(_lib.pqota_tls_peer_cn))
    peer_subject = property(lambda self: self._str(_lib.pqota_tls_peer_subject))
    peer_sha256 = property(lambda self: self._str(_lib.pqota_tls_peer_sha256))
    quantum_safe = property(lambda self: bool(_lib.pqota_tls_quantum_safe(self._handle())))


class _Context:
    _h = None  # until made: __del__ after a failed __init__ finds nothing to free

    def __init__(self, handle):
        self._h = handle

    def set_timeout(self, ms):
        _check(_lib.pqota_tls_ctx_set_timeout(self._h, int(ms)))

    def _conn(self, fn, *args):
        out = ctypes.c_void_p()
        _check(fn(self._h, *args, ctypes.byref(out)))
        return Connection(out.value)

    def free(self):
        if self._h and _lib is not None:
            _lib.pqota_tls_ctx_free(self._h)
            self._h = None

    def __del__(self):
        self.free()


class ServerContext(_Context):
    def __init__(self, profile, cert_file, key_file, ca_file=None, flags=0):
        lib = load()
        out = ctypes.c_void_p()
        _check(lib.pqota_tls_server_new(str(profile).encode(), _path(cert_file), _path(key_file),
                                        _path(ca_file), flags, ctypes.byref(out)))
        super().__init__(out.value)

    def accept(self, listen_fd):
        """Accepts on a listening socket and handshakes; the connection owns the socket."""
        return self._conn(_lib.pqota_tls_accept, listen_fd)

    def accept_fd(self, fd):
        """Handshakes on an accepted socket, which stays the caller's to close."""
        return self._conn(_lib.pqota_tls_accept_fd, fd)


class ClientContext(_Context):
    def __init__(self, profile, ca_file, cert_file=None, key_file=None):
        lib = load()
        out = ctypes.c_void_p()
        _check(lib.pqota_tls_client_new(str(profile).encode(), _path(ca_file), _path(cert_file),
                                        _path(key_file), 0, ctypes.byref(out)))
        super().__init__(out.value)

    def connect(self, host, port, server_name=None):
        """Connects to host:port and handshakes, verifying server_name (default: host)."""
        sn = server_name.encode() if server_name else None
        return self._conn(_lib.pqota_tls_connect, host.encode(), str(port).encode(), sn)


if __name__ == "__main__":
    load()
    print(f"libpqota-tls {version()} on {openssl_version()}")
    for p in profiles():
        print("%2d  %-22s %-20s %s" % p)
    sys.exit(0)
