"""The HTTP floor of plan latency: the same multipart upload to a FastAPI endpoint that does nothing.

Served by uvicorn exactly like the API (``uvicorn --app-dir benchmarks http_floor_app:app``), so
the difference to the real ``POST /v1/plans`` is the plan's own work, not the framework's.
"""

from fastapi import FastAPI, File, UploadFile

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/plans", status_code=201)
async def upload(tile: UploadFile = File(...)) -> dict[str, int]:
    return {"bytes": len(await tile.read())}
