"""API keys per tenant and tenant isolation (each API test runs embedded and through Celery)."""

from __future__ import annotations

import json

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


DOCS = ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]


@pytest.mark.parametrize("path", DOCS)
def test_docs_and_schema_need_a_key_once_keys_are_configured(keyed, path):
    response = keyed.get(path)
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("path", DOCS)
def test_docs_and_schema_answer_with_a_key(keyed, path):
    response = keyed.get(path, headers=auth("acme"))
    assert response.status_code == 200
    if path == "/openapi.json":
        assert "/v1/estimates" in response.json()["paths"]


@pytest.mark.parametrize("path", DOCS)
def test_docs_can_be_published_explicitly(make_client, path):
    published = make_client(api_keys={"acme": hash_key(KEYS["acme"])}, public_docs=True)
    assert published.get(path).status_code == 200
    assert published.get("/v1/models").status_code == 401  # publishing the docs publishes nothing else


def test_the_docs_routes_are_not_in_the_schema(keyed):
    paths = keyed.get("/openapi.json", headers=auth("acme")).json()["paths"]
    assert not set(paths) & {"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}


@pytest.fixture
def acme_estimate(make_client, data_root, tmp_path) -> tuple:
    """A finished region estimate of acme's, and the keyed client that made it."""
    from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done

    api = make_client(
        api_keys={tenant: hash_key(key) for tenant, key in KEYS.items()},
        data_root=data_root,
        upload_dir=tmp_path / "uploads",
    )
    form = {
        "region": geojson_text(tiles_box(0, 0, 2, 2)),
        "region_crs": "EPSG:32618",
        "raster_ref": "scene.tif",
        "pricing": json.dumps(FREE_PRICING),
    }
    response = api.post("/v1/estimates", data=form, headers=auth("acme"))
    assert response.status_code == 202, response.text
    api.headers.update(auth("acme"))
    job = wait_done(api, response.json()["id"])
    del api.headers["Authorization"]
    assert job["state"] == "succeeded", job
    return api, job


@pytest.mark.parametrize("suffix", ["", "/tiles.geojson", "/order.geojson"])
def test_the_owner_reads_its_estimate(acme_estimate, suffix):
    api, job = acme_estimate
    assert api.get(f"/v1/jobs/{job['id']}{suffix}", headers=auth("acme")).status_code == 200


@pytest.mark.parametrize("suffix", ["", "/tiles.geojson", "/order.geojson"])
def test_another_tenants_estimate_reads_as_missing(acme_estimate, suffix):
    api, job = acme_estimate
    response = api.get(f"/v1/jobs/{job['id']}{suffix}", headers=auth("globex"))
    assert response.status_code == 404
    unknown = api.get(f"/v1/jobs/est_{'0' * 32}{suffix}", headers=auth("globex"))
    assert response.json()["code"] == unknown.json()["code"]
    assert response.json()["detail"] == unknown.json()["detail"].replace("0" * 32, job["id"][4:])


def test_another_tenants_estimate_cannot_be_cancelled(acme_estimate):
    api, job = acme_estimate
    response = api.delete(f"/v1/jobs/{job['id']}", headers=auth("globex"))
    assert response.status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}", headers=auth("acme")).json() == job  # untouched
