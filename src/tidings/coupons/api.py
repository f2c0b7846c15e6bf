"""REST endpoints: coupon pools - list, create, import codes (CSV), generate codes, stock,
usage (CSV). Bad input is a problem naming the field or the CSV row."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id, InputModel
from tidings.coupons import service
from tidings.coupons.models import CouponPool

router = APIRouter(tags=["coupons"])


class PoolIn(InputModel):
    name: str = Field(min_length=1, max_length=50, description="letters, digits or _")
    low_stock: int = Field(default=0, ge=0, le=1_000_000_000, description="warn at this many")
    low_stock_notify: str | None = Field(
        default=None, max_length=320, description="email told once when stock is low"
    )


class CodesIn(InputModel):
    """CSV text: the first column is the code; a header row `code` is skipped."""

    csv: str = Field(max_length=50_000_000)


class GenerateIn(InputModel):
    count: int = Field(ge=1, le=1_000_000)
    pattern: str = Field(
        default="####-####-####", min_length=4, max_length=200, description="each # random"
    )


def _out(session: Session, pool: CouponPool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "name": pool.name,
        "field": service.field_key(pool.name),
        "low_stock": pool.low_stock,
        "low_stock_notify": pool.low_stock_notify,
        "low_stock_at": pool.low_stock_at,
        "created_at": pool.created_at,
        "stock": service.stock(session, pool),
    }


@router.get("/coupon-pools")
def list_pools(session: SessionDep) -> dict[str, Any]:
    return {"data": [_out(session, pool) for pool in service.pools(session)]}


@router.post("/coupon-pools", status_code=201)
def create_pool(body: PoolIn, session: SessionDep, clock: ClockDep) -> dict[str, Any]:
    pool = service.create_pool(
        session,
        body.name,
        now=clock.now(),
        low_stock=body.low_stock,
        notify=body.low_stock_notify,
    )
    return _out(session, pool)


@router.get("/coupon-pools/{pool_id}")
def show_pool(pool_id: Id, session: SessionDep) -> dict[str, Any]:
    return _out(session, service.pool_by_id(session, pool_id))


@router.post("/coupon-pools/{pool_id}/codes")
def import_codes(pool_id: Id, body: CodesIn, session: SessionDep) -> dict[str, int]:
    return {"added": service.import_csv(session, service.pool_by_id(session, pool_id), body.csv)}


@router.post("/coupon-pools/{pool_id}/generate")
def generate_codes(pool_id: Id, body: GenerateIn, session: SessionDep) -> dict[str, int]:
    pool = service.pool_by_id(session, pool_id)
    return {"added": service.generate(session, pool, body.count, body.pattern)}


@router.get("/coupon-pools/{pool_id}/stock")
def pool_stock(pool_id: Id, session: SessionDep) -> dict[str, int]:
    return service.stock(session, service.pool_by_id(session, pool_id))


@router.get("/coupon-pools/{pool_id}/usage.csv", response_class=Response)
def pool_usage(pool_id: Id, session: SessionDep) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "contact_id", "assigned_at"])
    for code, contact, at in service.usage(session, service.pool_by_id(session, pool_id)):
        writer.writerow([code, contact or "", at.isoformat() if at else ""])
    return Response(out.getvalue(), media_type="text/csv")
