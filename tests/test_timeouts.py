"""The request deadline: a body that trickles in gets 408, an answer that never comes 503."""

from __future__ import annotations

import asyncio

from service.timeouts import RequestTimeoutMiddleware


async def _read_all(receive) -> None:
    while True:
        message = await receive()
        if not message.get("more_body", False):
            return


async def slow_app(scope, receive, send) -> None:
    await _read_all(receive)
    await asyncio.sleep(5)


async def echo_app(scope, receive, send) -> None:
    await _read_all(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def call(app, headers: list[tuple[bytes, bytes]], chunk_delay: float = 0.0) -> tuple[int, bytes]:
    sent: list[dict] = []
    chunks = [b"a", b"b", b"c"]

    async def receive():
        await asyncio.sleep(chunk_delay)
        body = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(RequestTimeoutMiddleware(app, timeout_s=0.2)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_body_that_trickles_in_is_cut_off_with_408():
    status, body = call(echo_app, [(b"transfer-encoding", b"chunked")], chunk_delay=0.15)
    assert status == 408 and b'"body_timeout"' in body


def test_an_answer_past_the_deadline_is_503():
    status, body = call(slow_app, [(b"content-length", b"3")])
    assert status == 503 and b'"request_timeout"' in body and b"PATCHDROP_REQUEST_TIMEOUT_S" in body


def test_a_request_within_the_deadline_is_untouched():
    assert call(echo_app, [(b"content-length", b"3")]) == (200, b"ok")


def test_the_app_puts_the_deadline_outermost(tmp_path):
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(db_path=tmp_path / "x.sqlite3", preload_models=False, request_timeout_s=45))
    outermost = app.user_middleware[0]
    assert outermost.cls is RequestTimeoutMiddleware and outermost.kwargs == {"timeout_s": 45}
