"""The upload cap over a real socket: uvicorn on 127.0.0.1, a chunked body that never ends.

The test client hands the app the whole body at once, so a middleware that buffered the body
before counting would pass there. Here the client sends the cap and a little more and then
stops without finishing the body: only a cap enforced while the body streams can answer (413),
and it must answer before the body ends, which it never does.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from service_helpers import embedded_settings

from service.app import create_app

CAP = 8192
DEADLINE_S = 20.0


@pytest.fixture
def server(bundle_path: Path, tmp_path: Path) -> Iterator[tuple[str, int]]:
    settings = embedded_settings(tmp_path, bundle_path, max_upload_bytes=CAP)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield sock.getsockname()
    server.should_exit = True
    thread.join(DEADLINE_S)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_chunked_body_over_the_cap_is_refused_before_it_ends(server):
    host, port = server
    with socket.create_connection((host, port), timeout=DEADLINE_S) as conn:
        conn.sendall(
            b"POST /v1/plans HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        conn.sendall(_chunk(b'--b\r\nContent-Disposition: form-data; name="tile"; filename="t.tif"\r\n\r\n'))
        sent = 0
        # A slow client: many small chunks, each its own send, until just past the cap. It stops
        # sending once an answer is readable: bytes sent to a socket the server has closed would
        # make its kernel answer with a reset, which can discard the 413 before it is read.
        while sent <= CAP and not select.select([conn], [], [], 0.01)[0]:
            conn.sendall(_chunk(b"\0" * 512))
            sent += 512
        # No terminating chunk: the body never ends. Read the answer it gets anyway.
        answer = b""
        conn.settimeout(DEADLINE_S)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = conn.recv(65536)
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    if b"transfer-encoding: chunked" in head.lower():
        body = b"".join(body.split(b"\r\n")[1::2])
    error = json.loads(body)
    assert error["code"] == "upload_too_large" and f"{CAP} bytes" in error["detail"]
