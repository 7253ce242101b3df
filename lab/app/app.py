"""The lab's application service: a small real HTTP API in front of PostgreSQL and Redis.

/health        liveness: the process answers, with the app's version (APP_VERSION of its image, v1 by default).
/health/ready  readiness: really queries the database and pings Redis; 503 when either fails.
/api/customers/<id>  reads a customer, cached in Redis for 5 minutes (real traffic for the stack).
OPTIONS /api/...     CORS preflight: allows only https://app.stackops.test.
/ws/           a WebSocket opening handshake (101 with Sec-WebSocket-Accept), then close.
"""

from __future__ import annotations

import signal
import sys


def stop(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


# As PID 1 the process has no default SIGTERM action: take the signal before the slow imports below, or a
# `docker stop` right after a start waits out docker's 10 s and kills.
signal.signal(signal.SIGTERM, stop)

import base64  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402
import redis  # noqa: E402

ADDR = os.environ["LAB_ADDR"]
PORT = int(os.environ.get("APP_PORT", "8000"))
# Images built FROM the lab image for deploy tests set APP_VERSION; the lab image itself is the first release.
VERSION = os.environ.get("APP_VERSION", "v1")
CHECK_TIMEOUT = 2
CORS_ORIGIN = "https://app.stackops.test"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def db_connect() -> Any:
    # The second lab shape (lab3) names its database and owner after runbook 001's stack: sovd_db, sovd_user.
    return psycopg2.connect(
        host=ADDR,
        port=5432,
        dbname=os.environ.get("APP_DB_NAME", "app"),
        user=os.environ.get("APP_DB_USER", "app"),
        password=os.environ["APP_DB_PASSWORD"],
        connect_timeout=CHECK_TIMEOUT,
        application_name="lab-app",
    )


def cache() -> redis.Redis:
    return redis.Redis(
        host=ADDR,
        port=6379,
        password=os.environ["REDIS_PASSWORD"],
        socket_timeout=CHECK_TIMEOUT,
        socket_connect_timeout=CHECK_TIMEOUT,
    )


def check_database() -> str:
    try:
        with db_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        conn.close()
        return "ok"
    except psycopg2.Error as exc:
        return f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"


def check_redis() -> str:
    try:
        return "ok" if cache().ping() else "error: no PONG"
    except redis.RedisError as exc:
        return f"error: {exc}"


def customer(customer_id: int) -> dict[str, Any] | None:
    key = f"cache:customer:{customer_id}"
    r = cache()
    hit = r.get(key)
    if hit is not None:
        return json.loads(hit)
    with db_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, email, name, country FROM app.customers WHERE id = %s", (customer_id,))
        row = cur.fetchone()
    conn.close()
    if row is None:
        return None
    found = dict(zip(("id", "email", "name", "country"), row))
    r.set(key, json.dumps(found), ex=300)
    return found


class Handler(BaseHTTPRequestHandler):
    server_version = "stackops-lab-app/1"

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_OPTIONS(self) -> None:
        # CORS preflight for the API, as the runbooks' nginx/app setups answer it: only the app's own origin.
        origin = self.headers.get("Origin", "")
        self.send_response(204)
        if self.path.startswith("/api/") and origin == CORS_ORIGIN:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def upgrade(self) -> None:
        """The WebSocket opening handshake (RFC 6455), then close: enough for a health check to prove the upgrade
        passes through nginx."""
        key = self.headers.get("Sec-WebSocket-Key", "")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self.reply(426, {"error": "upgrade required"})
            return
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.close_connection = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/ws/":
            self.upgrade()
        elif path == "/health":
            self.reply(200, {"status": "ok", "version": VERSION})
        elif path == "/health/ready":
            database, cache_state = check_database(), check_redis()
            ready = database == "ok" and cache_state == "ok"
            self.reply(
                200 if ready else 503,
                {"status": "ready" if ready else "not_ready", "database": database, "redis": cache_state},
            )
        elif path.startswith("/api/customers/") and path.rsplit("/", 1)[1].isdigit():
            try:
                found = customer(int(path.rsplit("/", 1)[1]))
            except (psycopg2.Error, redis.RedisError) as exc:
                self.reply(503, {"error": str(exc).strip()})
                return
            self.reply(200 if found else 404, found or {"error": "not found"})
        else:
            self.reply(404, {"error": "not found"})

    do_HEAD = do_GET  # noqa: N815 (http.server's naming)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main() -> None:
    server = ThreadingHTTPServer((ADDR, PORT), Handler)
    server.daemon_threads = True
    print(f"lab app {VERSION} listening on {ADDR}:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
