"""Property-based fuzzing of every endpoint from the OpenAPI schema (schemathesis): no 5xx, ever.

Runs in process against the embedded app configured as in production (API keys on; every case
carries a valid key, so it reaches the routes rather than stopping at 401). The Celery mode
shares the routes, schemas and error table; its outages are covered by test_service_faults.py.
A fixed example budget per operation keeps the suite fast. Set ``PATCHDROP_FUZZ_EXAMPLES`` for a longer run; the
number of cases tried is printed (``-s``) and asserted: every documented operation that takes input gets at least
``PATCHDROP_FUZZ_EXAMPLES`` cases (a schema or strategy that stops generating fails the run).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from models.nn.checkpoint import save_bundle
from service.app import create_app
from service.security import hash_key, new_key

EXAMPLES = int(os.environ.get("PATCHDROP_FUZZ_EXAMPLES", "40"))
TRIED: Counter[str] = Counter()
DOCUMENTED: dict[str, bool] = {}  # "METHOD /path" -> whether it takes parameters or a body
STATUSES: Counter[int] = Counter()
KEY = new_key()


def _app():
    from service_helpers import embedded_settings, random_bundle

    folder = Path(os.environ.get("PATCHDROP_FUZZ_DIR") or __import__("tempfile").mkdtemp(prefix="pdfuzz-"))
    bundle = save_bundle(random_bundle(), folder / "fuzz.pt")
    settings = embedded_settings(
        folder, bundle, upload_dir=folder / "uploads", environment="production", api_keys={"fuzzer": hash_key(KEY)}
    )
    return create_app(settings)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(scope="module")
def fuzz_schema():
    app = _app()
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            DOCUMENTED[f"{method.upper()} {path}"] = bool(operation.get("parameters") or operation.get("requestBody"))
    # the schema is behind the API keys like the API (service.routes.docs)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    yield
    total = sum(TRIED.values())
    print(f"\nschemathesis: {total} cases over {len(TRIED)} operations, statuses {dict(sorted(STATUSES.items()))}")
    print(f"cases per operation: {dict(sorted(TRIED.items()))}")
    assert DOCUMENTED, "the OpenAPI schema lists no operations"
    missing = [op for op in DOCUMENTED if TRIED[op] == 0]
    assert not missing, f"no cases generated for {missing}"
    short = {op: TRIED[op] for op, takes_input in DOCUMENTED.items() if takes_input and TRIED[op] < EXAMPLES}
    assert not short, f"fewer than {EXAMPLES} cases for operations that take input: {short}"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: a failure here is reproducible
)
def test_no_endpoint_answers_5xx(case):
    TRIED[f"{case.method} {case.path}"] += 1
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    STATUSES[response.status_code] += 1
    what = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, what
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code >= 400 and content_type.startswith("application/json"):
        assert set(response.json()) == {"code", "detail"}, what  # errors keep the one body shape
