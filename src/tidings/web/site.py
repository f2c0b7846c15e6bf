"""Assembles the web admin into the app: static files, /docs, the pages and their errors."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tidings.web import (
    auth_pages,
    automation_pages,
    broadcast_page,
    contact_page,
    contacts_pages,
    dashboard,
    deal_pages,
    deal_reports,
    email_pages,
    job_pages,
    segment_pages,
    settings_pages,
    system_pages,
)
from tidings.web.security import Forbidden, LoginRequired
from tidings.web.templating import HERE, is_htmx, render

STATIC = HERE / "static"
VENDOR = "/static/vendor"


def install_web(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (
        auth_pages.public,
        auth_pages.signed_in,
        dashboard.router,
        contacts_pages.router,
        contact_page.router,
        segment_pages.router,
        settings_pages.router,
        automation_pages.router,
        system_pages.router,
        deal_reports.router,  # before deal_pages: /admin/deals/reports is no deal id
        deal_pages.router,
        email_pages.router,
        broadcast_page.router,
        job_pages.router,
    ):
        app.include_router(router, include_in_schema=False)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/admin", status_code=307)

    @app.get("/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        # Swagger UI from the npm package copied by `make install`: no CDN at run time. The app
        # comes from the request, not this closure: FastAPI caches route functions for the
        # process, and a closure over `app` would keep every app made (and its database) alive.
        return get_swagger_ui_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title="Tidings API",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
        )

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"/admin/login?next={quote(target)}"
        if is_htmx(request):  # htmx would swap the login form into a fragment: redirect instead
            return Response(status_code=401, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "error.html", {"message": exc.detail}, status=403)
