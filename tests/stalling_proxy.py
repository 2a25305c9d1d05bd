"""A PACS that stalls mid-transfer: a TCP relay on 127.0.0.1 in front of a real server that, once told to,
stops passing the server's bytes on after a given count, and passes them again when released.

`StallingProxy(target_port)`; point medview at `proxy.port`; `hold_after(n)` before a transfer; `held` is set
once the relay holds (so a test knows the transfer is stuck mid-way, without timing); `release()` lets the
rest through; `close()` ends it.
"""

from __future__ import annotations

import socket
import threading


class StallingProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._budget: int | None = None  # bytes from the server still passed on before holding
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="stalling-proxy", daemon=True).start()

    def hold_after(self, n_bytes: int) -> None:
        """Pass on `n_bytes` more of what the server sends, then hold the rest."""
        with self._lock:
            self._budget = n_bytes

    def release(self) -> None:
        with self._lock:
            self._budget = None
        self.held.clear()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.release()
        for s in [self.listener, *self._sockets]:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while data:
                    chunk = self._passable(data) if from_server else data
                    if chunk:
                        sink.sendall(chunk)
                        data = data[len(chunk):]
                    if data:  # the budget is spent: hold until released
                        self.held.set()
                        self._flowing.wait()
                        if self._closed:
                            return
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _passable(self, data: bytes) -> bytes:
        with self._lock:
            if self._budget is None:
                return data
            n = min(self._budget, len(data))
            self._budget -= n
            if self._budget == 0:
                self._flowing.clear()
            return data[:n]
