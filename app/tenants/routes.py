"""Tenants and API keys over HTTP, for admin keys; and `GET /v1/tenant`, a caller's own tenant and quotas.

The same operations as `kerasd admin` (which works on the database directly, for the first key).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.core.database import get_session
from app.core.quotas import limits_of
from app.core.settings import get_settings
from app.core.tables import ApiKey, Tenant
from app.http.auth import Caller, current_caller, require_admin
from app.http.sessions import SessionReleasingRoute
from app.tenants import service

router = APIRouter(prefix="/v1", tags=["tenants"], route_class=SessionReleasingRoute)


class Quotas(BaseModel):
    """A tenant's own quotas; null (or absent) means the server's setting, 0 means no limit."""

    # Strict: `true` is not a count, nor "5" a rate.
    model_config = ConfigDict(extra="forbid", strict=True)

    max_running_jobs: int | None = Field(None, ge=0, le=1_000_000, description="jobs running at once")
    max_queued_jobs: int | None = Field(None, ge=0, le=10_000_000, description="jobs waiting in the queue")
    max_stored_bytes: int | None = Field(None, ge=0, le=2**62, description="datasets, uploads, artifacts")
    requests_per_s: float | None = Field(None, ge=0, le=1_000_000, description="sustained request rate")
    request_burst: int | None = Field(None, ge=0, le=10_000_000, description="requests at once above the rate")


class TenantCreate(Quotas):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      examples=["team-vision"])


class Usage(BaseModel):
    running_jobs: int
    queued_jobs: int
    stored_bytes: int


class Limits(BaseModel):
    running_jobs: int
    queued_jobs: int
    stored_bytes: int
    requests_per_s: float
    request_burst: int


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    quotas: Quotas = Field(description="the tenant's own values (null: the server's setting)")
    limits: Limits = Field(description="what applies now (0: no limit)")
    usage: Usage


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("", max_length=100, pattern=r"^[^\x00]*$", description="what the key is for")
    role: str = Field("user", pattern="^(user|admin)$", description="`admin` may also manage tenants and keys")


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    prefix: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself, shown this once: kerasd keeps only its hash")


def tenant_out(session: Session, tenant: Tenant) -> TenantOut:
    limits = limits_of(tenant, get_settings())
    return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at,
                     quotas=Quotas(**{field: getattr(tenant, field) for field in service.QUOTA_FIELDS}),
                     limits=Limits(**vars(limits)), usage=Usage(**service.usage(session, tenant.id)))


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(id=row.id, tenant_id=row.tenant_id, name=row.name, prefix=row.prefix, role=row.role,
                  created_at=row.created_at, revoked_at=row.revoked_at)


@router.get("/tenant", response_model=TenantOut, summary="Your tenant: its quotas, what applies, what you use",
            description="Any key (or the keyless default tenant): the quotas that apply to you, your own "
                        "overrides, and what you use now: running and queued jobs, stored bytes.")
def get_own_tenant(session: Session = Depends(get_session), caller: Caller = Depends(current_caller)) -> TenantOut:
    return tenant_out(session, service.get_tenant(session, ident=caller.tenant_id))


@router.get("/admin/tenants", response_model=list[TenantOut], summary="Every tenant (admin keys)",
            description="Each tenant with its quotas and usage. Needs a key whose role is `admin`.")
def list_tenants(session: Session = Depends(get_session), _admin: Caller = Depends(require_admin)) -> list[TenantOut]:
    return [tenant_out(session, tenant) for tenant in service.list_tenants(session)]


@router.post("/admin/tenants", response_model=TenantOut, status_code=status.HTTP_201_CREATED,
             summary="Create a tenant, with quotas of its own if given (admin keys)",
             description="Names are unique (409 for a taken one). Quotas left out follow the server's "
                         "KERASD_MAX_*_PER_TENANT settings. Then make it a key: POST /v1/admin/tenants/{id}/keys.")
def create_tenant(body: TenantCreate, session: Session = Depends(get_session),
                  _admin: Caller = Depends(require_admin)) -> TenantOut:
    tenant = service.create_tenant(session, name=body.name, quotas=body.model_dump(exclude={"name"}))
    session.commit()
    return tenant_out(session, tenant)


@router.get("/admin/tenants/{tenant_id}", response_model=TenantOut, summary="A tenant, by id or name (admin keys)",
            description="Its quotas, the limits that apply and its usage.")
def get_tenant(tenant_id: str, session: Session = Depends(get_session),
               _admin: Caller = Depends(require_admin)) -> TenantOut:
    return tenant_out(session, service.get_tenant(session, ident=tenant_id))


@router.patch("/admin/tenants/{tenant_id}", response_model=TenantOut,
              summary="Change a tenant's quotas: the fields given, null for the server's setting (admin keys)",
              description="Fields left out keep their value; 0 means no limit. Takes effect within a few "
                          "seconds on every API process.")
def set_tenant_quotas(tenant_id: str, body: Quotas, session: Session = Depends(get_session),
               _admin: Caller = Depends(require_admin)) -> TenantOut:
    tenant = service.get_tenant(session, ident=tenant_id)
    service.set_quotas(session, tenant=tenant, quotas=body.model_dump(exclude_unset=True))
    session.commit()
    return tenant_out(session, tenant)


@router.get("/admin/tenants/{tenant_id}/keys", response_model=list[KeyOut], summary="A tenant's keys (admin keys)",
            description="Id, visible prefix, role, and when each was made or revoked; never the keys "
                        "themselves, which are not stored.")
def list_api_keys(tenant_id: str, session: Session = Depends(get_session),
              _admin: Caller = Depends(require_admin)) -> list[KeyOut]:
    tenant = service.get_tenant(session, ident=tenant_id)
    return [key_out(row) for row in service.list_keys(session, tenant_id=tenant.id)]


@router.post("/admin/tenants/{tenant_id}/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED,
             summary="Make an API key for a tenant; the answer is the only time the key is shown (admin keys)",
             description="Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`. kerasd keeps its "
                         "sha256 and its prefix only: a lost key cannot be shown again, make a new one.")
def create_api_key(tenant_id: str, body: KeyCreate, session: Session = Depends(get_session),
               _admin: Caller = Depends(require_admin)) -> KeyCreated:
    tenant = service.get_tenant(session, ident=tenant_id)
    row, key = service.create_key(session, tenant=tenant, name=body.name, role=body.role)
    session.commit()
    return KeyCreated(**key_out(row).model_dump(), key=key)


@router.delete("/admin/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Revoke an API key, by id or prefix; requests with it are 401 at once (admin keys)",
               description="Revoking a revoked key is no error. The key's tenant and its resources stay.")
def revoke_api_key(key_id: str, session: Session = Depends(get_session),
               _admin: Caller = Depends(require_admin)) -> Response:
    service.revoke_key(session, ident=key_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
