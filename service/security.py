"""Tenants, API keys and record ownership.

API keys
    ``Settings.api_keys`` maps a tenant id to the SHA-256 of its key
    (``{"acme": "sha256:<hex>"}``; ``python -m service.security new-key acme`` makes
    both). Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
    Without configured keys (local, embedded use) every request is the tenant
    ``public``; ``environment=production`` refuses to start without keys.
    ``authenticate`` runs for every route of the app (an app-level dependency),
    so a new router is protected without doing anything; only ``PUBLIC_PATHS``
    answer without a key (and ``DOC_PATHS`` when ``Settings.public_docs`` is on).
    The docs routes are added by ``service.app`` as ordinary routes so the
    same dependency covers them (FastAPI's own docs routes take no dependencies).

Ownership, the same for every kind of record (plans, jobs, estimates, ...)
    1. The route takes ``tenant: TenantDep`` (``service.deps``).
    2. A record written to the store carries the tenant: ``stamp(record, tenant)``
       (or ``"tenant": tenant.id`` in the dict).
    3. A record read by id goes through ``owned(record, tenant, NotFoundErrorClass, "plan")``:
       another tenant's record raises exactly the not-found error a missing id
       raises (404, same message), so ids reveal nothing across tenants.
    Records stored before tenants existed belong to ``public``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from models.errors import PatchDropError
from service.errors import UnauthorizedError

PUBLIC = "public"
TENANT_FIELD = "tenant"
PUBLIC_PATHS = frozenset({"/healthz"})
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


@dataclass(frozen=True)
class Tenant:
    id: str


def hash_key(key: str) -> str:
    # API keys are random 256-bit tokens, not passwords: one SHA-256 is enough, a slow KDF
    # would only add latency to every request.
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "pdk_" + secrets.token_urlsafe(32)


class KeyRing:
    """Key hash -> tenant; a lookup compares against every hash in constant time."""

    def __init__(self, api_keys: Mapping[str, str]) -> None:
        self._entries = [(key_hash, tenant) for tenant, key_hash in api_keys.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def tenant_for(self, key: str) -> str | None:
        presented = hash_key(key)
        found = None
        for key_hash, tenant in self._entries:
            if hmac.compare_digest(presented, key_hash):
                found = tenant  # no early exit: the time taken does not depend on which key matched
        return found


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def _keyring(request: Request) -> KeyRing:
    state = request.app.state
    ring = getattr(state, "keyring", None)
    if ring is None:
        ring = state.keyring = KeyRing(state.settings.api_keys)
    return ring


def authenticate(request: Request) -> Tenant:
    """The tenant of the request (FastAPI caches it per request, however many routes ask)."""
    ring = _keyring(request)
    path = getattr(request.scope.get("route"), "path", None)
    public = path in PUBLIC_PATHS or (path in DOC_PATHS and request.app.state.settings.public_docs)
    if not ring.enabled or public:
        return Tenant(PUBLIC)
    key = _presented_key(request)
    if key is None:
        raise UnauthorizedError("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    tenant = ring.tenant_for(key)
    if tenant is None:
        raise UnauthorizedError("the API key is not valid")
    return Tenant(tenant)


def _tenant_id(tenant: Tenant | str) -> str:
    return tenant.id if isinstance(tenant, Tenant) else tenant


def stamp(record: dict[str, Any], tenant: Tenant | str) -> dict[str, Any]:
    """The record, marked as the tenant's (in place, and returned for chaining)."""
    record[TENANT_FIELD] = _tenant_id(tenant)
    return record


def owner(record: Mapping[str, Any]) -> str:
    return record.get(TENANT_FIELD) or PUBLIC


def owned(record: dict[str, Any], tenant: Tenant | str, not_found: type[PatchDropError], what: str) -> dict[str, Any]:
    """The record if the tenant owns it; else the not-found error a missing id gets (``no <what> with id 'x'``)."""
    if owner(record) != _tenant_id(tenant):
        raise not_found(f"no {what} with id {record.get('id')!r}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.security", description="API keys for tenants.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("new-key", help="print a new key (give it to the tenant) and the entry for api_keys")
    make.add_argument("tenant")
    digest = sub.add_parser("hash-key", help="the api_keys entry of an existing key (read from stdin)")
    digest.add_argument("tenant")
    args = parser.parse_args(argv)
    key = new_key() if args.command == "new-key" else sys.stdin.readline().strip()
    if args.command == "new-key":
        print(f"key (give to {args.tenant}, shown once): {key}")
    print(f'PATCHDROP_API_KEYS entry: "{args.tenant}": "{hash_key(key)}"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
