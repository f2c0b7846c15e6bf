"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from tidings import __version__
from tidings.api.deps import refuse_nul_parameters, require_api_key
from tidings.api.guard import RequestGuard
from tidings.api.openapi import install_openapi
from tidings.api.problems import install_problem_handlers
from tidings.clock import Clock, SystemClock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database, create_database
from tidings.messaging.subscriptions import double_opt_in


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Tidings",
        version=__version__,
        description="Self-hosted marketing automation and CRM. Authenticate with "
        "`Authorization: Bearer <key>` (create one with `tidings apikey create NAME`).",
        dependencies=[Depends(refuse_nul_parameters)],
        # /docs is served by the web admin from local assets (no CDN); ReDoc would need one.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database or create_database(settings.database_url)
    app.state.clock = clock or SystemClock()
    # What contacts asks of messaging, given here (tidings.contacts.ports).
    app.state.double_opt_in = double_opt_in(settings, app.state.database)
    install_problem_handlers(app)
    app.add_middleware(
        RequestGuard,
        database=app.state.database,
        budget_seconds=settings.request_timeout_seconds,
    )
    install_openapi(app)

    # First: the open pixel is the hottest path, and routes are matched in order.
    from tidings.events.tracking import router as tracking_router

    app.include_router(tracking_router)  # public: every request carries a signed token
    from tidings.activecampaign.mount import create_ac_app

    # ActiveCampaign-compatible, with its own auth and error shapes. Mounted early: a mount is
    # one prefix check for other paths, while /api/3 requests would otherwise be matched
    # against every route registered before it.
    app.mount("/api/3", create_ac_app(app))
    from tidings.contacts.api import router as contacts_router

    authenticated = [Depends(require_api_key)]
    app.include_router(contacts_router, prefix="/api/v1", dependencies=authenticated)
    from tidings.events.api import router as events_router

    app.include_router(events_router, prefix="/api/v1", dependencies=authenticated)
    from tidings.segments.api import router as segments_router

    app.include_router(segments_router, prefix="/api/v1", dependencies=authenticated)

    from tidings.messaging.api import router as messaging_router
    from tidings.messaging.public import router as messaging_public_router

    app.include_router(messaging_router, prefix="/api/v1", dependencies=authenticated)
    app.include_router(messaging_public_router)

    from tidings.automations.api import router as automations_router

    app.include_router(automations_router, prefix="/api/v1", dependencies=authenticated)

    from tidings.deals.api import router as deals_router

    app.include_router(deals_router, prefix="/api/v1", dependencies=authenticated)
    from tidings.jobs.api import router as jobs_router

    app.include_router(jobs_router, prefix="/api/v1", dependencies=authenticated)
    from tidings.coupons.api import router as coupons_router

    app.include_router(coupons_router, prefix="/api/v1", dependencies=authenticated)
    from tidings.system.api import router as system_router

    app.include_router(system_router, prefix="/api/v1", dependencies=authenticated)

    from tidings.web.site import install_web

    install_web(app)

    from tidings.webhooks.api import router as webhooks_router

    app.include_router(webhooks_router, prefix="/api/v1", dependencies=authenticated)

    from tidings.activecampaign.mount import create_ac_app
    from tidings.activecampaign.tracking import public_router as ac_event_router

    app.include_router(ac_event_router)  # ActiveCampaign's event tracking: a key in the form

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
