"""The upload cap, enforced while the body streams in (before it is spooled anywhere).

A declared ``Content-Length`` over the cap is refused before any byte is read;
otherwise bytes are counted as they arrive and the request is cut off at the cap.
The answer is the usual ``{"code", "detail"}`` body with status 413.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import RegionError
from service.errors import UploadTooLargeError, error_response, status_for


class _Exceeded(Exception):
    pass


class UploadLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> UploadTooLargeError:
        return UploadTooLargeError(
            f"the request body exceeds the upload limit of {self.max_bytes} bytes "
            f"({self.max_bytes / 2**20:.1f} MiB, PATCHDROP_MAX_UPLOAD_BYTES)"
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = self._error()
        response = error_response(status_for(err.code), err.code, err.message)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _Exceeded()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app answers to a cut-off body, the answer is 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _Exceeded:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)


TEXT_FILE_FIELDS = frozenset({"region"})  # form fields that may also arrive as a file part (curl -F region=@aoi.json)


class LargeFormRoute(APIRoute):
    """A route whose text fields may be as large as the upload cap, and whose ``TEXT_FILE_FIELDS`` may be files.

    Starlette caps each text field of a form at 1 MiB (``max_part_size``) unless told otherwise, and
    detailed regions of interest are bigger. The form is parsed here with the upload cap as the limit
    (the whole body is already held to it by ``UploadLimitMiddleware``, which answers 413 past it);
    FastAPI then reads the parsed form that the request keeps.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_form_then_handle(request: Request) -> Response:
            if request.method == "POST":
                limit = request.app.state.settings.max_upload_bytes
                form = await request.form(max_part_size=limit)
                if any(isinstance(form.get(name), UploadFile) for name in TEXT_FILE_FIELDS):
                    request._form = await _files_as_text(form)  # the request's parsed-form cache, read by FastAPI
            return await handler(request)

        return parse_form_then_handle


async def _files_as_text(form: FormData) -> FormData:
    items: list[tuple[str, str | UploadFile]] = []
    for name, value in form.multi_items():
        if name in TEXT_FILE_FIELDS and isinstance(value, UploadFile):
            data = await value.read()
            await value.close()  # FastAPI closes the files of the form it is given, not of this one
            try:
                value = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise RegionError(f"the {name} file part is not UTF-8 text: {exc.reason}") from exc
        items.append((name, value))
    return FormData(items)
