"""Helpers for the SDK tests: TCP proxies to the API that cut a job's event stream once, or take the server away."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class CutRecord:
    event_requests: list[bytes] = field(default_factory=list)
    cuts: int = 0


class _Forwarder:
    """A TCP proxy on 127.0.0.1 (a free port) to the API's port; each connection gets two pump threads."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._listen(self._listener)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _listen(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), name="proxy-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for target, args in self._pumps(client, upstream):
                threading.Thread(target=target, args=args, daemon=True).start()

    def _pumps(self, client: socket.socket, upstream: socket.socket) -> list[tuple]:
        raise NotImplementedError


class CuttingProxy(_Forwarder):
    """Forwards 127.0.0.1:port to the API; the first `/events` response is cut off right after its
    `cut_after`-th epoch event, as a dropped connection would (the chunked body never ends).

    Every later request passes untouched, so the client's reconnection goes through."""

    def __init__(self, upstream_port: int, *, cut_after: int = 3) -> None:
        self.cut_after = cut_after
        self.record = CutRecord()
        self._cut_done = False
        super().__init__(upstream_port)

    def _pumps(self, client: socket.socket, upstream: socket.socket) -> list[tuple]:
        state = {"events": False, "cut": False}
        return [(self._upstream_pump, (client, upstream, state)), (self._downstream_pump, (upstream, client, state))]

    def _upstream_pump(self, source: socket.socket, sink: socket.socket, state: dict) -> None:
        try:
            while data := source.recv(65536):
                head = data.split(b"\r\n\r\n", 1)[0]
                if head[:4] in (b"GET ", b"POST", b"DELE", b"PUT ", b"HEAD"):
                    state["events"] = b"/events" in head.split(b"\r\n", 1)[0]
                    if state["events"]:
                        with self._lock:
                            self.record.event_requests.append(head)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(sink)

    def _downstream_pump(self, source: socket.socket, sink: socket.socket, state: dict) -> None:
        seen = 0
        buffer = b""
        try:
            while data := source.recv(65536):
                with self._lock:
                    cutting = state["events"] and not self._cut_done
                if not cutting:
                    sink.sendall(data)
                    continue
                buffer += data
                while (end := buffer.find(b"\n\n")) >= 0:
                    message, buffer = buffer[:end + 2], buffer[end + 2:]
                    sink.sendall(message)
                    if b"event: epoch" in message:
                        seen += 1
                        if seen >= self.cut_after:
                            with self._lock:
                                self._cut_done = True
                                self.record.cuts += 1
                            _close(sink)
                            _close(source)
                            return
        except OSError:
            pass
        finally:
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class OutageProxy(_Forwarder):
    """Forwards 127.0.0.1:port to the API until the server "goes away": right after the `down_after`-th epoch
    event it passes on, every connection is cut and the port refuses connections for `down_for_s` seconds, as a
    server that was restarted; then it forwards again on the same port."""

    def __init__(self, upstream_port: int, *, down_after: int = 2, down_for_s: float = 3.0) -> None:
        self.down_after = down_after
        self.down_for_s = down_for_s
        self.outages = 0
        self._epochs = 0
        self._sockets: list[socket.socket] = []
        super().__init__(upstream_port)

    def _pumps(self, client: socket.socket, upstream: socket.socket) -> list[tuple]:
        with self._lock:
            self._sockets += [client, upstream]
        return [(self._pump, (client, upstream, False)), (self._pump, (upstream, client, True))]

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if downstream and b"event: epoch" in data:
                    with self._lock:
                        self._epochs += data.count(b"event: epoch")
                        going_down = self.outages == 0 and self._epochs >= self.down_after
                        if going_down:
                            self.outages += 1
                    if going_down:
                        self._go_down()
                        return
        except OSError:
            pass
        finally:
            _close(sink)

    def _go_down(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)
        threading.Timer(self.down_for_s, self._come_back).start()

    def _come_back(self) -> None:
        if self._stop.is_set():
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._listen(listener)
