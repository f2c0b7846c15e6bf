"""A small CRM set up through the real API: contacts, users, a pipeline with four stages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.deals.helpers import Crm, ok
from tests.messaging.conftest import sink  # noqa: F401  (the SMTP sink, for the deal email tests)


@pytest.fixture
def crm(client: TestClient) -> Crm:
    contacts = [
        ok(client.post("/api/v1/contacts", json={"email": f"c{i}@example.com"}), 201)["id"]
        for i in range(3)
    ]
    users = [
        ok(client.post("/api/v1/users", json={"email": e, "name": n}), 201)["id"]
        for e, n in (("ann@example.com", "Ann"), ("bob@example.com", "Bob"))
    ]
    pipeline = ok(
        client.post(
            "/api/v1/pipelines",
            json={
                "name": "Sales",
                "currency": "EUR",
                "stages": [
                    {"title": "Lead", "probability": 10},
                    {"title": "Qualified", "probability": 30},
                    {"title": "Proposal", "probability": 60},
                    {"title": "Negotiation", "probability": 80},
                ],
            },
        ),
        201,
    )
    return Crm(client, contacts, users, pipeline["id"], [s["id"] for s in pipeline["stages"]])
