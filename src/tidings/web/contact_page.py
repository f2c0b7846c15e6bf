"""Pages (filled in below)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tidings.web.security import check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])
