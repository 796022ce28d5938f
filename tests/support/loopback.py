"""One way to run a test HTTP server on loopback: a ThreadingHTTPServer on a free port, served from a daemon
thread, shut down by `stop()` or by leaving a `with` block. Every fake and stub in tests/support stands on it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Subclasses build their handler class and call `self.serve(Handler)`; `address` is 127.0.0.1:port."""

    server: ThreadingHTTPServer
    address: str

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A request still in flight when the test ends must not keep the process alive.
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
