"""The runner's webhook: receives S3 event notifications that MinIO POSTs to 127.0.0.1."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

# An S3 event notification from MinIO is a few KiB; anything far larger is not one.
MAX_EVENT_BYTES = 1024 * 1024


class WebhookReceiver:
    """An HTTP server that passes each authenticated event to ``dispatch``."""

    def __init__(self, address: str, dispatch: Callable[[dict[str, Any]], None]) -> None:
        host, _, port = address.rpartition(":")
        self.token = secrets.token_urlsafe(32)
        self.dispatch = dispatch
        self.server = ThreadingHTTPServer((host, int(port)), self._handler_class())
        self.server.daemon_threads = True
        self.serving = False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/events"

    def serve_forever(self, poll_interval: float) -> None:
        self.serving = True
        self.server.serve_forever(poll_interval=poll_interval)

    def shutdown(self) -> None:
        # socketserver's shutdown() waits for serve_forever() to return, forever if it
        # never started.
        if self.serving:
            self.server.shutdown()
        self.server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                # MinIO probes the target with HEAD or GET to decide whether it is online.
                self._reply(200)

            def do_GET(self) -> None:
                self._reply(200)

            def do_POST(self) -> None:
                expected = f"Bearer {receiver.token}"
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), expected.encode()):
                    logger.warning("webhook request with a wrong token from %s",
                                   self.client_address[0])
                    self._reply(401)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_EVENT_BYTES:
                    self._reply(413)
                    return
                try:
                    event = json.loads(self.rfile.read(length))
                    receiver.dispatch(event)
                except (ValueError, TypeError) as error:
                    logger.warning("webhook received an invalid event: %s", error)
                    self._reply(400)
                    return
                self._reply(200)

            def _reply(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("webhook: " + format, *args)

        return Handler
