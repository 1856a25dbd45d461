"""A deadline for every request, body upload included (``PATCHDROP_REQUEST_TIMEOUT_S``).

A client that trickles its body in (slowloris) holds a connection and a parser;
an answer that never comes holds the client. Past the deadline the request is
answered with the usual ``{"code", "detail"}`` body: 408 ``body_timeout`` while
the body is still arriving, else 503 ``request_timeout``. Work already handed to
a thread or a Celery worker is not interrupted (it cannot be, safely); requests
that run tasks answer 202 with their job well before the deadline
(``job_wait_s`` < ``request_timeout_s``, enforced by the settings).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTimeoutError, RequestTimeoutError, error_response, status_for


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        has_body = headers.get(b"content-length", b"0") not in (b"", b"0") or b"transfer-encoding" in headers
        body_done = not has_body
        started = False

        async def tracking_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, tracking_receive, tracking_send), self.timeout_s)
        except asyncio.TimeoutError:
            if started:
                return  # part of the answer is out: nothing valid can follow, the connection is closed
            if body_done:
                err: BodyTimeoutError | RequestTimeoutError = RequestTimeoutError(
                    f"the request did not finish within {self.timeout_s:g} s (PATCHDROP_REQUEST_TIMEOUT_S); retry later"
                )
            else:
                err = BodyTimeoutError(
                    f"the request body did not arrive within {self.timeout_s:g} s (PATCHDROP_REQUEST_TIMEOUT_S)"
                )
            response = error_response(status_for(err.code), err.code, err.message)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
