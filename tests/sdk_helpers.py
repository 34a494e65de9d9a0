"""Helpers for the SDK tests: a TCP proxy that cuts a job's event stream once."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class CutRecord:
    event_requests: list[bytes] = field(default_factory=list)
    cuts: int = 0


class CuttingProxy:
    """Forwards 127.0.0.1:port to the API; the first `/events` response is cut off right after its
    `cut_after`-th epoch event, as a dropped connection would (the chunked body never ends).

    Every later request passes untouched, so the client's reconnection goes through."""

    def __init__(self, upstream_port: int, *, cut_after: int = 3) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.record = CutRecord()
        self._lock = threading.Lock()
        self._cut_done = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"events": False, "cut": False}
            for target, args in ((self._upstream_pump, (client, upstream, state)),
                                 (self._downstream_pump, (upstream, client, state))):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

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
