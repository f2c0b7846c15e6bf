"""A real `tidings` app served by uvicorn on loopback (in a thread), for the real
ActiveCampaign client, and ASGI clients that speak /api/3 with an Api-Token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tidings.config import Settings


@pytest.fixture
def ac(app: FastAPI, api_key: str) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, base_url="http://testserver/api/3") as c:
        c.headers["Api-Token"] = api_key
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_url(app: FastAPI) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks may reach the loopback receiver in these tests."""
    return settings.model_copy(update={"webhook_allow_private": True})
