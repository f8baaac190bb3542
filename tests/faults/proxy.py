"""A TCP forwarder on a loopback port that a test can cut and restore.

Put between the app and PostgreSQL it makes "the database stops" without stopping the shared
server: :meth:`TcpProxy.cut` closes the listening socket (new connections are refused, as when
the server is down) and every forwarded connection in both directions (the backend sees its
client go and rolls back what was not committed; the app sees the server close the
connection); :meth:`TcpProxy.restore` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.port = 0
        self.accepted = 0
        self._stalled = False
        self._held: list[socket.socket] = []

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(self, *_: object) -> None:
        self.unstall()
        self.cut()

    @property
    def up(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        """Listen (again, on the same port) and forward new connections."""
        with self._lock:
            if self._listener is not None:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            sock.settimeout(0.05)
            self.port = sock.getsockname()[1]
            self._listener = sock
            thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
            self._accepting = thread
        thread.start()

    def stall(self) -> None:
        """Drop every open connection and accept new ones without ever answering (a database
        host that stopped responding: connections hang rather than fail)."""
        self._stalled = True
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def unstall(self) -> None:
        self._stalled = False
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()

    def cut(self) -> None:
        """Refuse new connections and drop every open one (both ends)."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
            thread, self._accepting = self._accepting, None
        if listener is not None:
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        if thread is not None:
            thread.join(timeout=2)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stalled:
                with self._lock:
                    self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
