"""A stand-in for the mesh's weighted route on loopback: forwards each POST to one of several upstreams."""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class WeightedSplitter:
    """Sends each request to upstream i with probability weights[i] / sum(weights), like Envoy's weighted clusters."""

    def __init__(self, upstreams: Sequence[str], weights: Sequence[int], seed: int = 7) -> None:
        self.upstreams = [urlsplit(u) for u in upstreams]
        self.weights = list(weights)
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        splitter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with splitter.lock:
                    target = splitter.random.choices(splitter.upstreams, splitter.weights)[0]
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
                try:
                    conn.request("POST", "/", body, {"content-type": self.headers.get("content-type", "text/plain")})
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            def log_message(self, *_args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
