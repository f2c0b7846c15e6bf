"""The coupon pools API: list, create, import (a duplicate is a problem naming its row),
generate, stock, usage CSV; bad input is a problem naming the field, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_create_fill_stock_and_usage(client: TestClient) -> None:
    created = client.post("/api/v1/coupon-pools", json={"name": "SPRING", "low_stock": 2})
    assert created.status_code == 201, created.text
    pool = created.json()
    assert pool["field"] == "coupon_spring" and pool["stock"]["free"] == 0
    base = f"/api/v1/coupon-pools/{pool['id']}"
    assert client.post(f"{base}/codes", json={"csv": "code\nA\nB\n"}).json() == {"added": 2}
    generated = client.post(f"{base}/generate", json={"count": 3, "pattern": "S-####"})
    assert generated.json() == {"added": 3}
    assert client.get(f"{base}/stock").json() == {"free": 5, "assigned": 0, "shortage": 0, "low": 0}
    assert [p["name"] for p in client.get("/api/v1/coupon-pools").json()["data"]] == ["SPRING"]
    usage = client.get(f"{base}/usage.csv")
    assert usage.headers["content-type"].startswith("text/csv")
    lines = usage.text.splitlines()
    assert lines[0] == "code,contact_id,assigned_at" and lines[1:3] == ["A,,", "B,,"]


def test_problems_name_the_field_or_row(client: TestClient) -> None:
    pool = client.post("/api/v1/coupon-pools", json={"name": "P"}).json()
    base = f"/api/v1/coupon-pools/{pool['id']}"
    duplicate = client.post(f"{base}/codes", json={"csv": "A\nB\nA\n"})
    assert duplicate.status_code == 422
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert "row 3: duplicate code 'A'" in duplicate.text
    again = client.post("/api/v1/coupon-pools", json={"name": "P"})
    assert again.status_code == 422 and "name" in again.text
    bad_name = client.post("/api/v1/coupon-pools", json={"name": "no spaces"})
    assert bad_name.status_code == 422 and "name" in bad_name.text
    count = client.post(f"{base}/generate", json={"count": 0})
    assert count.status_code == 422 and "count" in count.text
    pattern = client.post(f"{base}/generate", json={"count": 1, "pattern": "AB##"})
    assert pattern.status_code == 422 and "pattern" in pattern.text
    extra = client.post(f"{base}/codes", json={"csv": "A", "oops": 1})
    assert extra.status_code == 422 and "oops" in extra.text
    assert client.get("/api/v1/coupon-pools/999999/stock").status_code == 404
    assert client.get("/api/v1/coupon-pools/0/stock").status_code == 422
    assert client.post(f"{base}/codes", json={"csv": "A\x00"}).status_code == 422
    assert client.post(f"{base}/codes", json={"csv": "A\n"}).json() == {"added": 1}
