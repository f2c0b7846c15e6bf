"""Tasks (with types, done/undone, overdue lists) and notes, on deals and on contacts."""

from __future__ import annotations

from datetime import timedelta

from tests.deals.helpers import Crm, ok, problem
from tidings.clock import FakeClock


def test_tasks_on_a_deal_write_its_timeline(crm: Crm, clock: FakeClock) -> None:
    deal = crm.deal()
    due = (clock.now() + timedelta(days=1)).isoformat()
    task = ok(
        crm.client.post(
            "/api/v1/tasks",
            json={
                "type": "call",
                "title": "Call back",
                "deal_id": deal["id"],
                "due_at": due,
                "assignee_id": crm.users[0],
            },
        ),
        201,
    )
    assert task["done"] is False and task["contact_id"] is None and task["type"] == "call"
    done = ok(crm.client.post(f"/api/v1/tasks/{task['id']}/complete"))
    assert done["done"] is True and done["done_at"] is not None
    ok(crm.client.post(f"/api/v1/tasks/{task['id']}/complete"))  # already done: nothing new
    undone = ok(crm.client.post(f"/api/v1/tasks/{task['id']}/reopen"))
    assert undone["done"] is False and undone["done_at"] is None
    items = crm.timeline(deal["id"])
    assert [(a["type"], a["data"]) for a in items[:2]] == [
        ("deal_task_completed", {"task_id": task["id"], "task_type": "call"}),
        ("deal_task_created", {"task_id": task["id"], "task_type": "call"}),
    ]
    contact_items = ok(crm.client.get(f"/api/v1/contacts/{crm.contacts[0]}/timeline"))["items"]
    assert contact_items[0]["type"] == "deal_task_completed"


def test_tasks_on_a_contact_and_the_overdue_list(crm: Crm, clock: FakeClock) -> None:
    now = clock.now()

    def task(title: str, hours: int, **more: object) -> dict[str, object]:
        body = {
            "title": title,
            "contact_id": crm.contacts[1],
            "assignee_id": crm.users[0],
            "due_at": (now + timedelta(hours=hours)).isoformat(),
            **more,
        }
        return ok(crm.client.post("/api/v1/tasks", json=body), 201)  # type: ignore[no-any-return]

    late = task("late", -5)
    later = task("later", -1, type="meeting")
    task("future", 3)
    done = task("done", -9)
    ok(crm.client.post(f"/api/v1/tasks/{done['id']}/complete"))
    task("other user", -9, assignee_id=crm.users[1])
    overdue = ok(crm.client.get("/api/v1/tasks/overdue", params={"assignee": crm.users[0]}))
    assert [t["id"] for t in overdue] == [late["id"], later["id"]]
    items = ok(crm.client.get(f"/api/v1/contacts/{crm.contacts[1]}/timeline"))["items"]
    assert {"task_created", "task_completed"} <= {a["type"] for a in items}
    page = ok(crm.client.get("/api/v1/tasks", params={"contact": crm.contacts[1], "done": False}))
    assert len(page["items"]) == 4
    patched = ok(
        crm.client.patch(f"/api/v1/tasks/{late['id']}", json={"title": "very late", "due_at": None})
    )
    assert patched["title"] == "very late" and patched["due_at"] is None
    problem(crm.client.patch(f"/api/v1/tasks/{late['id']}", json={"deal_id": 1}), 422)


def test_task_types_builtin_and_custom(crm: Crm) -> None:
    client = crm.client
    names = [t["name"] for t in ok(client.get("/api/v1/task-types"))]
    assert names == ["call", "email", "meeting", "to-do"]
    demo = ok(client.post("/api/v1/task-types", json={"name": "Demo"}), 201)
    assert demo["name"] == "demo"
    problem(client.post("/api/v1/task-types", json={"name": "call"}), 409)
    problem(client.post("/api/v1/task-types", json={"name": "demo"}), 409)
    error = problem(
        client.post(
            "/api/v1/tasks", json={"title": "t", "type": "lunch", "contact_id": crm.contacts[0]}
        ),
        422,
    )
    assert error["errors"][0]["field"] == "type"
    task = ok(
        client.post(
            "/api/v1/tasks", json={"title": "t", "type": "demo", "contact_id": crm.contacts[0]}
        ),
        201,
    )
    problem(client.delete(f"/api/v1/task-types/{demo['id']}"), 409)
    ok(client.patch(f"/api/v1/task-types/{demo['id']}", json={"name": "product demo"}))
    assert ok(client.get(f"/api/v1/tasks/{task['id']}"))["type"] == "product demo"
    assert client.delete(f"/api/v1/tasks/{task['id']}").status_code == 204
    assert client.delete(f"/api/v1/task-types/{demo['id']}").status_code == 204


def test_task_and_note_refusals(crm: Crm) -> None:
    client = crm.client
    deal = crm.deal()
    both = {"title": "t", "deal_id": deal["id"], "contact_id": crm.contacts[0]}
    problem(client.post("/api/v1/tasks", json=both), 422)
    problem(client.post("/api/v1/tasks", json={"title": "t"}), 422)
    error = problem(client.post("/api/v1/tasks", json={"title": "t", "deal_id": 999}), 422)
    assert error["errors"][0]["field"] == "deal_id"
    error = problem(client.post("/api/v1/tasks", json={"title": "t", "contact_id": 999}), 422)
    assert error["errors"][0]["field"] == "contact_id"
    problem(client.post("/api/v1/tasks", json={"title": " ", "deal_id": deal["id"]}), 422)
    problem(
        client.post(
            "/api/v1/tasks",
            json={"title": "t", "deal_id": deal["id"], "due_at": "2026-01-01T09:00:00"},
        ),
        422,
    )
    problem(client.post("/api/v1/notes", json={"body": "x", "deal_id": 999}), 422)
    problem(client.post("/api/v1/notes", json={"body": "", "deal_id": deal["id"]}), 422)
    problem(client.get("/api/v1/notes"), 422)
    problem(client.get("/api/v1/tasks/424242"), 404)


def test_notes_on_deals_and_contacts(crm: Crm) -> None:
    client = crm.client
    deal = crm.deal()
    first = ok(
        client.post(
            "/api/v1/notes",
            json={"body": "Met at the fair", "deal_id": deal["id"], "author_id": crm.users[0]},
        ),
        201,
    )
    second = ok(
        client.post("/api/v1/notes", json={"body": "Sent prices", "deal_id": deal["id"]}), 201
    )
    ok(client.post("/api/v1/notes", json={"body": "Likes tea", "contact_id": crm.contacts[2]}), 201)
    page = ok(client.get("/api/v1/notes", params={"deal": deal["id"], "limit": 1}))
    assert [n["id"] for n in page["items"]] == [second["id"]]
    rest = ok(
        client.get("/api/v1/notes", params={"deal": deal["id"], "cursor": page["next_cursor"]})
    )
    assert [n["id"] for n in rest["items"]] == [first["id"]]
    assert crm.timeline(deal["id"])[0] == {
        **crm.timeline(deal["id"])[0],
        "type": "deal_note_added",
        "data": {"note_id": second["id"]},
    }
    items = ok(client.get(f"/api/v1/contacts/{crm.contacts[2]}/timeline"))["items"]
    assert items[0]["type"] == "note_added"
    edited = ok(
        client.patch(f"/api/v1/notes/{first['id']}", json={"body": "Met at the fair in May"})
    )
    assert edited["body"] == "Met at the fair in May"
    assert client.delete(f"/api/v1/notes/{first['id']}").status_code == 204
    problem(client.get(f"/api/v1/notes/{first['id']}"), 404)
