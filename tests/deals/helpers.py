"""Helpers for the deals tests: the CRM the `crm` fixture sets up, and answer checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient


@dataclass
class Crm:
    client: TestClient
    contacts: list[int]
    users: list[int]
    pipeline: int
    stages: list[int]

    def deal(self, **body: Any) -> dict[str, Any]:
        payload = {"title": "Deal", "contact_id": self.contacts[0], "pipeline_id": self.pipeline}
        payload.update(body)
        response = self.client.post("/api/v1/deals", json=payload)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def timeline(self, deal_id: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/deals/{deal_id}/timeline")
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()  # type: ignore[no-any-return]
