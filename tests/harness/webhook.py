"""A webhook receiver on the controller's loopback for alert tests: it records every POST (path, headers, JSON body)
and answers with the status the test sets (204 by default; 500 to play a webhook that is down)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Receiver:
    url: str
    status: int = 204
    requests: list[dict[str, t.Any]] = field(default_factory=list)

    @property
    def bodies(self) -> list[t.Any]:
        return [r["body"] for r in self.requests]

    def take(self) -> list[t.Any]:
        """The bodies received since the last take, and forget them."""
        bodies, self.requests[:] = self.bodies, []
        return bodies


@contextlib.contextmanager
def webhook(path: str = "/services/T000/B000/s3cr3t-token") -> Iterator[Receiver]:
    """A receiver at http://127.0.0.1:<free port><path> (a path shaped like a Slack webhook's, whose last part is its
    token: a test can look for it in the output). Requests to any path are recorded."""
    lock = threading.Lock()
    receiver: Receiver

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: t.Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            with lock:
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
