"""A real local HTTP server (127.0.0.1) that records what alert channels post: the webhook end of a test."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A 127.0.0.1 HTTP server that records JSON posts and answers from a script of responses."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        #: path ("" = any) -> responses consumed first; then 200
        self.script: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                queue = outer.script.get(self.path) or outer.script.get("")
                code, answer = queue.pop(0) if queue else (200, {"ok": True})
                if code < 300:
                    outer.posts.append((self.path, body))
                payload = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
