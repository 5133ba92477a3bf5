"""TCP-level stand-ins for a collector: one that never answers, and a recording pass-through proxy.

``SilentServer`` accepts TCP connections and then neither reads nor replies (a hung collector).
``RecordingProxy`` forwards to a real receiver and keeps the client's bytes, so tests can check
what went over the wire (e.g. the gRPC compressed-message flag, which the receiver's gRPC server
does not expose).
"""

from __future__ import annotations

import socket
import struct
import threading

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_DATA = 0x0
_H2_FLAG_PADDED = 0x8


def _close_listener(sock: socket.socket) -> None:
    """Close a listening socket so that a thread blocked in accept() on it returns (Linux: shutdown)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class SilentServer:
    """Listens on 127.0.0.1, accepts every connection, never reads from or writes to it."""

    def __init__(self):
        self._sock = None
        self._thread = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = None

    def __enter__(self) -> "SilentServer":
        self._sock = _listener()
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()
        return self

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._conns.append(conn)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def __exit__(self, *exc) -> None:
        _close_listener(self._sock)
        self._thread.join(5)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


class RecordingProxy:
    """127.0.0.1 TCP proxy to `upstream_port`, recording what each client connection sent."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._sock = None
        self._thread = None
        self._lock = threading.Lock()
        self._sent: list[bytearray] = []  # client -> upstream bytes, one buffer per connection
        self._sockets: list[socket.socket] = []
        self.port = None

    def __enter__(self) -> "RecordingProxy":
        self._sock = _listener()
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="recording-proxy", daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            buf = bytearray()
            with self._lock:
                self._sent.append(buf)
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, buf), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray | None):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    with self._lock:
                        record.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def client_bytes(self) -> list[bytes]:
        """What each client connection sent so far."""
        with self._lock:
            return [bytes(b) for b in self._sent]

    def grpc_message_flags(self) -> list[int]:
        """The compressed-flag byte of every gRPC message the clients sent (1 = compressed)."""
        return [flag for data in self.client_bytes() for flag in grpc_message_flags(data)]

    def __exit__(self, *exc) -> None:
        _close_listener(self._sock)
        self._thread.join(5)
        with self._lock:
            for s in self._sockets:
                s.close()


def grpc_message_flags(client_stream: bytes) -> list[int]:
    """Parse a client's HTTP/2 byte stream; return the compressed flag of each length-prefixed gRPC
    message carried in its DATA frames (all streams, in stream order)."""
    if not client_stream.startswith(_H2_PREFACE):
        return []
    pos = len(_H2_PREFACE)
    per_stream: dict[int, bytearray] = {}
    while pos + 9 <= len(client_stream):
        length = int.from_bytes(client_stream[pos : pos + 3], "big")
        ftype, flags = client_stream[pos + 3], client_stream[pos + 4]
        stream_id = struct.unpack(">I", client_stream[pos + 5 : pos + 9])[0] & 0x7FFFFFFF
        payload = client_stream[pos + 9 : pos + 9 + length]
        pos += 9 + length
        if ftype != _H2_DATA:
            continue
        if flags & _H2_FLAG_PADDED and payload:
            pad = payload[0]
            payload = payload[1 : len(payload) - pad]
        per_stream.setdefault(stream_id, bytearray()).extend(payload)
    out = []
    for stream_id in sorted(per_stream):
        data = per_stream[stream_id]
        i = 0
        while i + 5 <= len(data):
            out.append(data[i])
            i += 5 + int.from_bytes(data[i + 1 : i + 5], "big")
    return out
