"""The web admin: server-rendered pages (Jinja2 + htmx + Alpine.js) on the same FastAPI app.

See docs/web.md for the conventions (layout, auth, CSRF, partials) pages follow.
"""
