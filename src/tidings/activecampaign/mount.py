"""The /api/3 sub-application: its own error handlers (ActiveCampaign's shapes), the
`Api-Token` check, every resource router, and a 404 for what Tidings does not offer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse

from tidings.activecampaign import (
    automations,
    catalog,
    contact_links,
    contacts,
    deal_work,
    deals,
    tracking,
    webhooks,
)
from tidings.activecampaign.errors import install_error_handlers, not_found
from tidings.api.deps import DatabaseDep, refuse_nul_parameters
from tidings.auth.service import find_api_key

# ActiveCampaign resources with no counterpart in Tidings (docs/activecampaign.md).
UNSUPPORTED = {
    "accounts": "accounts (organisations)",
    "accountContacts": "accounts (organisations)",
    "addresses": "addresses",
    "brandings": "brandings",
    "calendars": "calendar feeds",
    "campaigns": "campaigns (use broadcasts: /api/v1/broadcasts)",
    "connections": "deep data connections",
    "customObjects": "custom objects",
    "dealCustomFieldMeta": "deal custom fields through /api/3 (use /api/v1/deal-fields)",
    "dealCustomFieldData": "deal custom field values through /api/3 (use /api/v1/deals)",
    "ecomCustomers": "ecommerce customers",
    "ecomOrders": "ecommerce orders (use purchase events: /api/v1/events)",
    "ecomOrderProducts": "ecommerce orders",
    "forms": "forms",
    "groups": "user groups",
    "messages": "campaign messages (use templates: /api/v1/templates)",
    "savedResponses": "saved responses",
    "segments": "segments through /api/3 (use /api/v1/segments)",
    "siteTrackingDomains": "site tracking domains",
    "templates": "campaign templates through /api/3 (use /api/v1/templates)",
}


def require_token(
    database: DatabaseDep,
    api_token: Annotated[str | None, Header(alias="Api-Token")] = None,
) -> None:
    """Checked in its own short read transaction: a write request takes SQLite's write lock
    only once its token is known good."""
    if api_token and api_token.strip():
        with database.read_session() as session:
            if find_api_key(session, api_token.strip()) is not None:
                return
    raise HTTPException(403, "You are not authorized to access this resource")


def _unsupported_router() -> APIRouter:
    router = APIRouter()

    @router.api_route(
        "/{resource}/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def unsupported(resource: str, rest: str) -> JSONResponse:
        what = UNSUPPORTED.get(resource)
        detail = (
            f"Tidings has no counterpart for {what}: see docs/activecampaign.md"
            if what
            else f"/api/3/{resource} is not a resource Tidings supports: see docs/activecampaign.md"
        )
        return not_found("Not supported", title="Not supported", status=404, detail=detail)

    @router.api_route(
        "/{resource}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    def unsupported_root(resource: str) -> JSONResponse:
        return unsupported(resource, "")

    return router


def create_ac_app(parent: FastAPI) -> FastAPI:
    app = FastAPI(
        title="Tidings ActiveCampaign-compatible API",
        description="ActiveCampaign API v3 conventions; authenticate with `Api-Token: <key>`.",
        dependencies=[Depends(refuse_nul_parameters), Depends(require_token)],
        docs_url=None,
        redoc_url=None,
    )
    app.state = parent.state  # one database, clock and settings for both
    install_error_handlers(app)
    for module in (
        contacts,
        contact_links,
        catalog,
        automations,
        deals,
        deal_work,
        webhooks,
        tracking,
    ):
        app.include_router(module.router)
    app.include_router(_unsupported_router())
    return app
