"""Users, pipelines and stages through the API: add, rename, reorder, delete (moving deals
out), and the refusals."""

from __future__ import annotations

from tests.deals.helpers import Crm, ok, problem


def test_users_create_list_patch_deactivate(crm: Crm) -> None:
    client = crm.client
    made = ok(
        client.post(
            "/api/v1/users", json={"email": " Cy@Example.COM ", "name": "Cy", "role": "admin"}
        ),
        201,
    )
    assert made["email"] == "cy@example.com" and made["role"] == "admin" and made["active"]
    problem(client.post("/api/v1/users", json={"email": "cy@example.com", "name": "X"}), 409)
    error = problem(client.post("/api/v1/users", json={"email": "nope", "name": "X"}), 422)
    assert error["errors"][0]["field"] == "email"
    problem(client.post("/api/v1/users", json={"email": "d@example.com", "name": " "}), 422)
    problem(
        client.post("/api/v1/users", json={"email": "d@example.com", "name": "D", "role": "boss"}),
        422,
    )
    renamed = ok(client.patch(f"/api/v1/users/{made['id']}", json={"name": "Cyrus"}))
    assert renamed["name"] == "Cyrus"
    off = ok(client.post(f"/api/v1/users/{made['id']}/deactivate"))
    assert off["active"] is False
    assert len(ok(client.get("/api/v1/users"))) == 3
    assert [u["email"] for u in ok(client.get("/api/v1/users", params={"active": False}))] == [
        "cy@example.com"
    ]
    problem(client.get("/api/v1/users/999"), 404)
    # a deactivated user can get no task either
    error = problem(
        client.post(
            "/api/v1/tasks",
            json={"title": "t", "contact_id": crm.contacts[0], "assignee_id": made["id"]},
        ),
        422,
    )
    assert error["errors"][0]["field"] == "assignee_id"


def test_pipeline_validation(crm: Crm) -> None:
    client = crm.client
    body = {"name": "P", "currency": "EUR", "stages": [{"title": "A"}]}
    problem(client.post("/api/v1/pipelines", json={**body, "name": "Sales"}), 409)
    error = problem(client.post("/api/v1/pipelines", json={**body, "currency": "EUX"}), 422)
    assert error["errors"] == [
        {"field": "currency", "message": "'EUX' is not an ISO 4217 currency code (such as EUR)"}
    ]
    problem(client.post("/api/v1/pipelines", json={**body, "stages": []}), 422)
    error = problem(
        client.post("/api/v1/pipelines", json={**body, "stages": [{"title": "A"}, {"title": "A"}]}),
        422,
    )
    assert error["errors"][0]["field"] == "stages"
    error = problem(
        client.post("/api/v1/pipelines", json={**body, "stages": [{"title": "A", "colour": "x"}]}),
        422,
    )
    assert error["errors"][0]["field"] == "stages[0].colour"
    problem(
        client.post(
            "/api/v1/pipelines", json={**body, "stages": [{"title": "A", "probability": 101}]}
        ),
        422,
    )
    renamed = ok(
        client.patch(
            f"/api/v1/pipelines/{crm.pipeline}", json={"name": "Sales EU", "currency": "chf"}
        )
    )
    assert (renamed["name"], renamed["currency"]) == ("Sales EU", "CHF")
    assert crm.deal()["currency"] == "CHF"


def test_stages_add_rename_reorder(crm: Crm) -> None:
    client = crm.client
    url = f"/api/v1/pipelines/{crm.pipeline}/stages"
    won = ok(client.post(url, json={"title": "Contract", "probability": 95}), 201)
    assert won["position"] == 4
    first = ok(client.post(url, json={"title": "Inbox", "position": 0, "colour": "#ABCDEF"}), 201)
    assert (first["position"], first["colour"]) == (0, "#abcdef")
    problem(client.post(url, json={"title": "Lead"}), 409)
    problem(client.post(url, json={"title": "Far", "position": 9}), 422)
    renamed = ok(
        client.patch(f"{url}/{crm.stages[0]}", json={"title": "New lead", "probability": 5})
    )
    assert (renamed["title"], renamed["probability"], renamed["position"]) == ("New lead", 5, 1)
    problem(client.patch(f"{url}/{crm.stages[1]}", json={"title": "Proposal"}), 409)
    order = [won["id"], *crm.stages, first["id"]]
    stages = ok(client.put(f"{url}/order", json={"stage_ids": order}))
    assert [s["id"] for s in stages] == order and [s["position"] for s in stages] == list(range(6))
    pipeline = ok(client.get(f"/api/v1/pipelines/{crm.pipeline}"))
    assert [s["id"] for s in pipeline["stages"]] == order
    error = problem(client.put(f"{url}/order", json={"stage_ids": order[:-1]}), 422)
    assert error["errors"][0]["field"] == "stage_ids"
    # a stage of another pipeline is not this pipeline's
    other = ok(
        client.post(
            "/api/v1/pipelines", json={"name": "B", "currency": "EUR", "stages": [{"title": "X"}]}
        ),
        201,
    )
    problem(client.patch(f"{url}/{other['stages'][0]['id']}", json={"title": "Y"}), 404)


def test_delete_stage_refused_while_deals_sit_in_it_unless_moved(crm: Crm) -> None:
    client = crm.client
    url = f"/api/v1/pipelines/{crm.pipeline}/stages"
    deals = [crm.deal(stage_id=crm.stages[1])["id"] for _ in range(3)]
    error = problem(client.delete(f"{url}/{crm.stages[1]}"), 409)
    assert "3 deal(s)" in error["detail"] and "move_to" in error["detail"]
    other = ok(
        client.post(
            "/api/v1/pipelines", json={"name": "B", "currency": "EUR", "stages": [{"title": "X"}]}
        ),
        201,
    )
    error = problem(
        client.delete(f"{url}/{crm.stages[1]}", params={"move_to": other["stages"][0]["id"]}), 422
    )
    assert error["errors"][0]["field"] == "move_to"
    problem(client.delete(f"{url}/{crm.stages[1]}", params={"move_to": crm.stages[1]}), 422)
    assert len(ok(client.get(f"/api/v1/pipelines/{crm.pipeline}"))["stages"]) == 4  # nothing done
    assert (
        client.delete(f"{url}/{crm.stages[1]}", params={"move_to": crm.stages[3]}).status_code
        == 204
    )
    stages = ok(client.get(f"/api/v1/pipelines/{crm.pipeline}"))["stages"]
    assert [s["id"] for s in stages] == [crm.stages[0], crm.stages[2], crm.stages[3]]
    assert [s["position"] for s in stages] == [0, 1, 2]
    for deal_id in deals:
        assert ok(client.get(f"/api/v1/deals/{deal_id}"))["stage_id"] == crm.stages[3]
        moved = [a for a in crm.timeline(deal_id) if a["type"] == "deal_stage_changed"]
        assert moved[0]["data"]["from_stage_id"] == crm.stages[1]
    # an empty stage goes without move_to; the last stage of a pipeline stays
    assert client.delete(f"{url}/{crm.stages[0]}").status_code == 204
    only = other["stages"][0]["id"]
    problem(client.delete(f"/api/v1/pipelines/{other['id']}/stages/{only}"), 409)
    # a pipeline with deals is not deleted; an empty one is
    problem(client.delete(f"/api/v1/pipelines/{crm.pipeline}"), 409)
    assert client.delete(f"/api/v1/pipelines/{other['id']}").status_code == 204
