"""A fault-injecting HTTP proxy between a service and the AWS emulator, on loopback: it forwards every
request to moto, except that while it throttles it answers DynamoDB's data operations with DynamoDB's own
throttling error (as a table past its provisioned throughput does), and it can be stopped (connection
refused, as when the emulator restarts) and started again on the same port.

Each connection serves one request (HTTP/1.0), so a stopped proxy refuses the very next call."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from sim.supervisor.process import free_port

HOST = "127.0.0.1"
TARGET_PREFIX = "DynamoDB_20120810."
#: the operations that read or write items: what DynamoDB throttles when a table is past its throughput
DATA_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
THROTTLED = "ProvisionedThroughputExceededException"
THROTTLED_BODY = json.dumps(
    {
        "__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLED}",
        "message": "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    }
).encode()
#: headers that belong to one connection, not to the message forwarded
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)
#: what the proxy's own answer carries already
OWN_HEADERS = frozenset({"date", "server"})


class DynamoDBFaults:
    """The proxy: `url` is the `AWS_ENDPOINT_URL` to give a service; `throttling`, `stop` and `start` are
    the faults; `throttled` counts the requests answered with the throttling error."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.port = free_port(HOST)
        self.throttled = 0
        self._to_throttle: int | None = 0  # None: every data operation
        self._operations: frozenset[str] = DATA_OPERATIONS
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._server = ThreadingHTTPServer((HOST, self.port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dynamodb-faults", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: the next call to DynamoDB through the proxy is refused."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    @contextmanager
    def throttling(
        self, count: int | None = None, operations: frozenset[str] = DATA_OPERATIONS
    ) -> Iterator[None]:
        """Throttle the next `count` requests for `operations` (every one while inside, when None)."""
        with self._lock:
            self._to_throttle, self._operations = count, operations
        try:
            yield
        finally:
            with self._lock:
                self._to_throttle = 0

    def throttles(self, operation: str) -> bool:
        """Whether a request for `operation` is to be throttled now; counts it when it is."""
        with self._lock:
            if operation not in self._operations or self._to_throttle == 0:
                return False
            if self._to_throttle is not None:
                self._to_throttle -= 1
            self.throttled += 1
            return True


@contextmanager
def dynamodb_faults(upstream: str) -> Iterator[DynamoDBFaults]:
    """A running proxy to `upstream` (the emulator's URL); stopped at the end."""
    faults = DynamoDBFaults(upstream)
    faults.start()
    try:
        yield faults
    finally:
        faults.stop()


def _handler(faults: DynamoDBFaults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            if target.startswith(TARGET_PREFIX) and faults.throttles(target.removeprefix(TARGET_PREFIX)):
                self._answer(
                    400,
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-ErrorType", THROTTLED),
                        ("x-amzn-RequestId", str(uuid.uuid4())),
                    ],
                    THROTTLED_BODY,
                )
                return
            upstream = http.client.HTTPConnection(faults.upstream, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                answer = response.read()
                dropped = HOP_BY_HOP | OWN_HEADERS
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
                self._answer(response.status, kept, answer)
            finally:
                upstream.close()

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests assert on what the services answer."""

    return Handler
