"""API keys per tenant and tenant isolation (each API test runs embedded and through Celery)."""

from __future__ import annotations

import pytest

from service.security import hash_key, new_key

TIFF = "image/tiff"
KEYS = {"acme": new_key(), "globex": new_key()}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


@pytest.fixture
def keyed(make_client):
    return make_client(api_keys={tenant: hash_key(key) for tenant, key in KEYS.items()})


@pytest.fixture
def acme_plan(keyed, lr_tile) -> dict:
    response = keyed.post("/v1/plans", files={"tile": ("t.tif", lr_tile(), TIFF)}, headers=auth("acme"))
    assert response.status_code == 201, response.text
    return response.json()


def test_a_request_without_a_key_is_refused(keyed):
    response = keyed.get("/v1/models")
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"
    assert "Authorization: Bearer" in response.json()["detail"]


def test_a_wrong_key_is_refused(keyed):
    response = keyed.get("/v1/models", headers={"Authorization": "Bearer pdk_not-a-key"})
    assert response.status_code == 401 and response.json() == {
        "code": "unauthorized",
        "detail": "the API key is not valid",
    }


def test_health_needs_no_key(keyed):
    assert keyed.get("/healthz").status_code == 200


def test_the_owner_reads_its_plan_with_either_header(keyed, acme_plan):
    by_bearer = keyed.get(f"/v1/plans/{acme_plan['id']}", headers=auth("acme"))
    by_header = keyed.get(f"/v1/plans/{acme_plan['id']}", headers={"X-API-Key": KEYS["acme"]})
    assert by_bearer.json() == by_header.json() == acme_plan


def test_another_tenants_plan_reads_as_missing(keyed, acme_plan):
    response = keyed.get(f"/v1/plans/{acme_plan['id']}", headers=auth("globex"))
    assert response.status_code == 404
    assert response.json() == {"code": "plan_not_found", "detail": f"no plan with id {acme_plan['id']!r}"}


def test_another_tenants_preview_reads_as_missing(keyed, acme_plan):
    response = keyed.get(f"/v1/plans/{acme_plan['id']}/preview.png", headers=auth("globex"))
    assert response.status_code == 404 and response.json()["code"] == "plan_not_found"


def test_another_tenants_plan_cannot_be_classified(keyed, acme_plan):
    response = keyed.post(f"/v1/plans/{acme_plan['id']}/classify", headers=auth("globex"))
    assert response.status_code == 404 and response.json()["code"] == "plan_not_found"


def test_another_tenants_job_reads_as_missing(keyed, acme_plan):
    job_id = acme_plan["job_id"]
    assert keyed.get(f"/v1/jobs/{job_id}", headers=auth("acme")).json()["state"] == "succeeded"
    response = keyed.get(f"/v1/jobs/{job_id}", headers=auth("globex"))
    assert response.status_code == 404
    assert response.json() == {"code": "job_not_found", "detail": f"no job with id {job_id!r}"}


def test_the_tenant_is_not_exposed_in_plans(acme_plan):
    assert "tenant" not in acme_plan
