"""The real ActiveCampaign client (activecampaign-python 1.0.10) against Tidings served by
uvicorn on loopback: every method that maps onto a supported resource, results checked."""

from __future__ import annotations

from typing import Any

import pytest
from activecampaign.client import Client

from tidings.automations.engine import Engine
from tidings.automations.service import create_automation
from tidings.clock import FakeClock
from tidings.db.engine import Database


@pytest.fixture
def client(server_url: str, api_key: str) -> Client:
    return Client(server_url, api_key)


def _automation(database: Database, clock: FakeClock, name: str, tag: str) -> int:
    with database.session() as session:
        row = create_automation(
            session,
            {
                "name": name,
                "trigger": {"type": "tag_added", "tag": tag},
                "steps": [{"id": "w", "wait": {"days": 3}}],
            },
            now=clock.now(),
        )
        return row.id


def test_contacts_tags_lists_and_fields(client: Client) -> None:
    contacts = client.contacts
    created = contacts.create_a_contact(
        {"contact": {"email": "Ada@Example.com", "firstName": "Ada", "lastName": "L"}}
    )
    contact_id = created["contact"]["id"]
    assert created["contact"]["email"] == "ada@example.com" and isinstance(contact_id, str)
    duplicate = contacts.create_a_contact({"contact": {"email": "ada@example.com"}})
    assert duplicate["errors"][0]["code"] == "duplicate"
    assert duplicate["errors"][0]["source"]["pointer"] == "/data/attributes/email"

    synced = contacts.create_or_update_contact(
        {"contact": {"email": "ada@example.com", "phone": "+44 1"}}
    )
    assert synced["contact"]["id"] == contact_id and synced["contact"]["phone"] == "+44 1"
    assert synced["contact"]["firstName"] == "Ada"  # not given: kept
    other = contacts.create_or_update_contact({"contact": {"email": "bob@example.com"}})
    assert other["contact"]["id"] != contact_id

    updated = contacts.update_a_contact(contact_id, {"contact": {"lastName": "Lovelace"}})
    assert updated["contact"]["lastName"] == "Lovelace"
    listed = contacts.list_all_contacts(email="ada@example.com")
    assert [c["id"] for c in listed["contacts"]] == [contact_id]
    assert listed["meta"]["total"] == "1"
    assert contacts.list_all_contacts(search="lovelace")["meta"]["total"] == "1"
    assert (
        contacts.list_all_contacts(limit=1, offset=1)["contacts"][0]["email"] == "bob@example.com"
    )

    # tags
    tag = client.tags.create_a_tag(
        {"tag": {"tag": "VIP", "tagType": "contact", "description": "d"}}
    )
    tag_id = tag["tag"]["id"]
    assert client.tags.retrieve_a_tag(tag_id)["tag"]["tag"] == "VIP"
    assert client.tags.update_a_tag(tag_id, {"tag": {"tag": "VIPs"}})["tag"]["tag"] == "VIPs"
    assert client.tags.list_all_tags()["meta"]["total"] == "1"
    link = contacts.add_a_tag_to_contact({"contactTag": {"contact": contact_id, "tag": tag_id}})
    assert link["contactTag"]["tag"] == tag_id
    tags = contacts.retrieve_contact_tags(contact_id)["contactTags"]
    assert [t["id"] for t in tags] == [link["contactTag"]["id"]]
    assert contacts.list_all_contacts(tagid=tag_id)["meta"]["total"] == "1"
    assert contacts.remove_a_tag_from_a_contact(link["contactTag"]["id"]) == {}
    assert contacts.retrieve_contact_tags(contact_id)["contactTags"] == []
    assert client.tags.delete_a_tag(tag_id) == {}
    assert "message" in client.tags.retrieve_a_tag(tag_id)

    # lists
    mailing_list = client.lists.create_a_list(
        {"list": {"name": "News", "stringid": "news", "sender_url": "x", "sender_reminder": "y"}}
    )
    list_id = mailing_list["list"]["id"]
    assert client.lists.retrieve_a_list(list_id)["list"]["name"] == "News"
    assert client.lists.retrieve_all_lists()["meta"]["total"] == "1"
    assert "listGroup" in client.lists.create_a_list_group_permission(
        {"listGroup": {"listid": list_id, "groupid": 3}}
    )
    joined = contacts.update_list_status_for_a_contact(
        {"contactList": {"list": list_id, "contact": contact_id, "status": 1}}
    )
    assert joined["contactList"]["status"] == "1"
    assert contacts.list_all_contacts(listid=list_id)["meta"]["total"] == "1"
    left = contacts.update_list_status_for_a_contact(
        {"contactList": {"list": list_id, "contact": contact_id, "status": 2}}
    )
    assert left["contactList"]["status"] == "2"
    again = contacts.update_list_status_for_a_contact(
        {"contactList": {"list": list_id, "contact": contact_id, "status": 1}}
    )
    assert again["errors"][0]["source"]["pointer"] == "/data/attributes/status"

    # custom fields and values
    field = contacts.create_a_custom_field(
        {"field": {"type": "dropdown", "title": "Plan", "perstag": "PLAN", "options": ["free"]}}
    )
    field_id = field["field"]["id"]
    assert contacts.retrieve_a_custom_field(field_id)["field"]["title"] == "Plan"
    assert (
        contacts.update_a_custom_field(field_id, {"field": {"title": "Plan name"}})["field"][
            "title"
        ]
        == "Plan name"
    )
    assert contacts.list_all_custom_fields()["meta"]["total"] == "1"
    rel = contacts.create_a_custom_field_relationship_to_list(
        {"fieldRel": {"field": field_id, "relid": list_id}}
    )
    assert rel["fieldRel"]["field"] == field_id
    options = contacts.create_custom_field_options(
        {"fieldOptions": [{"field": field_id, "label": "Pro", "value": "pro"}]}
    )
    assert options["fieldOptions"][0]["value"] == "pro"
    assert [o["value"] for o in contacts.retrieve_field_options(field_id)["fieldOptions"]] == [
        "free",
        "pro",
    ]
    value = contacts.create_a_custom_field_value(
        {"fieldValue": {"contact": contact_id, "field": field_id, "value": "pro"}}
    )
    value_id = value["fieldValue"]["id"]
    assert contacts.retrieve_a_custom_field_value(value_id)["fieldValue"]["value"] == "pro"
    changed = contacts.update_a_custom_field_value_for_contact(
        {"fieldValue": {"contact": contact_id, "field": field_id, "value": "free"}}, value_id
    )
    assert changed["fieldValue"]["value"] == "free"
    assert [
        v["value"] for v in contacts.retrieve_a_contacts_field_values(contact_id)["fieldValues"]
    ] == ["free"]
    assert contacts.list_all_custom_field_values()["fieldValues"][0]["id"] == value_id
    bad = contacts.create_a_custom_field_value(
        {"fieldValue": {"contact": contact_id, "field": field_id, "value": "gold"}}
    )
    assert bad["errors"][0]["source"]["pointer"].startswith("/data/attributes/")
    assert contacts.delete_a_custom_field_value(value_id) == {}
    assert contacts.delete_a_custom_field(field_id) == {}

    full = contacts.retrieve_a_contact(contact_id)
    assert {"contactLists", "fieldValues", "deals", "contactAutomations"} <= set(full)
    assert (
        contacts.retrieve_a_contacts_score_value(contact_id)["scoreValues"][0]["contact"]
        == contact_id
    )
    assert client.lists.delete_a_list(list_id) == {}
    assert contacts.delete_a_contact(contact_id) == {}
    assert contacts.retrieve_a_contact(contact_id)["message"].startswith("No Result")


def test_automations_through_the_client(
    client: Client, database: Database, clock: FakeClock
) -> None:
    automation_id = str(_automation(database, clock, "Welcome", "welcome"))
    contact_id = client.contacts.create_a_contact({"contact": {"email": "c@example.com"}})[
        "contact"
    ]["id"]
    run = client.contacts.add_a_contact_to_an_automation(
        {"contactAutomation": {"contact": contact_id, "automation": automation_id}}
    )["contactAutomation"]
    assert run["automation"] == automation_id and run["contact"] == contact_id
    Engine(database, clock).run_until_idle()
    assert (
        client.contacts.retrieve_an_automation_a_contact_is_in(run["id"])["contactAutomation"][
            "status"
        ]
        == "1"
    )
    mine = client.contacts.list_all_automations_the_contacts_is_in(contact_id)
    assert [r["id"] for r in mine["contactAutomations"]] == [run["id"]]
    assert client.contacts.list_all_automations_a_contact_is_in()["meta"]["total"] == "1"
    (listed,) = client.automations.list_all_automations()["automations"]
    assert listed["entered"] == "1" and listed["exited"] == "0"
    assert client.contacts.remove_a_contact_from_an_automation(run["id"]) == {}
    ended = client.contacts.retrieve_an_automation_a_contact_is_in(run["id"])["contactAutomation"]
    assert ended["status"] == "2"
    assert client.automations.list_all_automations()["automations"][0]["exited"] == "1"
    history = client.activities.list_all_activities(contact_id)["activities"]
    assert {"contact_created"} <= {a["type"] for a in history}


def test_deals_pipelines_tasks_notes_users(client: Client, database: Database) -> None:
    contact_id = client.contacts.create_a_contact({"contact": {"email": "d@example.com"}})[
        "contact"
    ]["id"]
    user = client.users.create_a_user(
        {
            "user": {
                "username": "owner",
                "email": "owner@example.com",
                "firstName": "O",
                "lastName": "W",
            }
        }
    )["user"]
    assert client.users.retrieve_a_user(user["id"])["user"]["email"] == "owner@example.com"
    assert client.users.retrieve_a_user_by_email("owner@example.com")["user"]["id"] == user["id"]
    assert client.users.retrieve_a_user_by_username("owner@example.com")["user"]["id"] == user["id"]
    assert (
        client.users.update_a_user(user["id"], {"user": {"firstName": "Olga"}})["user"]["firstName"]
        == "Olga"
    )
    assert client.users.list_all_users()["meta"]["total"] == "1"
    assert "user" in client.users.retrieve_logged_in_user()

    # a pipeline is made through the raw client call the library exposes
    group = client._post("/dealGroups", json={"dealGroup": {"title": "Sales", "currency": "usd"}})
    group_id = group["dealGroup"]["id"]
    stages = client.deals.list_all_stages(**{"filters[d_groupid]": group_id})["dealStages"]
    assert len(stages) == 3 and stages[0]["group"] == group_id
    (pipeline,) = client.deals.list_all_pipelines()["dealGroups"]
    assert pipeline["title"] == "Sales" and pipeline["currency"] == "usd"

    deal = client.deals.create_a_deal(
        {
            "deal": {
                "contact": contact_id,
                "title": "Big",
                "value": 45600,
                "currency": "usd",
                "group": group_id,
                "stage": stages[0]["id"],
                "owner": user["id"],
                "status": 0,
            }
        }
    )["deal"]
    assert deal["value"] == "45600" and deal["currency"] == "usd" and deal["status"] == "0"
    moved = client.deals.update_a_deal(
        deal["id"], {"deal": {"stage": stages[1]["id"], "status": 1}}
    )
    assert moved["deal"]["stage"] == stages[1]["id"] and moved["deal"]["status"] == "1"
    assert client.deals.retrieve_a_deal(deal["id"])["deal"]["title"] == "Big"
    assert (
        client.deals.list_all_deals(**{"filters[stage]": stages[1]["id"]})["meta"]["total"] == "1"
    )
    assert client.deals.list_all_deals(**{"filters[status]": 0})["meta"]["total"] == "0"
    assert client.deals.list_all_deals(**{"filters[search]": "big"})["meta"]["total"] == "1"
    bad = client.deals.create_a_deal({"deal": {"title": "x", "stage": 999, "contact": contact_id}})
    assert bad["errors"][0]["source"]["pointer"] == "/data/attributes/stage"

    note = client.deals.create_a_deal_note(deal["id"], {"note": {"note": "called"}})["note"]
    assert (
        client.deals.update_a_deal_note(deal["id"], note["id"], {"note": {"note": "called twice"}})[
            "note"
        ]["note"]
        == "called twice"
    )

    task = client.tasks.create_a_task(
        {
            "dealTask": {
                "title": "Call",
                "ownerType": "Deal",
                "relid": deal["id"],
                "status": 0,
                "duedate": "2026-03-05T10:00:00-05:00",
                "dealTasktype": "call",
            }
        }
    )["dealTask"]
    assert task["relid"] == deal["id"] and task["dealTasktype"] == "call"
    assert client.tasks.retrieve_a_task(task["id"])["dealTask"]["title"] == "Call"
    done = client.tasks.update_a_task(task["id"], {"dealTask": {"status": 1}})["dealTask"]
    assert done["status"] == "1"
    assert client.tasks.list_all_tasks()["meta"]["total"] == "1"
    assert client.tasks.delete_a_task(task["id"]) == {}

    contact_note = client.notes.create_a_note(
        {"note": {"note": "met at fair", "relid": contact_id, "reltype": "Subscriber"}}
    )["note"]
    assert client.notes.retrieve_a_note(contact_note["id"])["note"]["note"] == "met at fair"
    assert (
        client.notes.update_a_note(contact_note["id"], {"note": {"note": "x"}})["note"]["note"]
        == "x"
    )
    assert client.notes.list_all_notes()["meta"]["total"] == "2"
    assert client.notes.delete_a_note(contact_note["id"]) == {}

    assert client.deals.delete_a_deal(deal["id"]) == {}
    assert client.users.delete_a_user(user["id"]) == {}


def test_unsupported_resources_say_so(client: Client) -> None:
    answer: Any = client.contacts.retrieve_a_contacts_bounce_logs(1)
    assert "not" in answer["detail"]
    answer = client.deals.list_all_custom_field_values()
    assert answer["title"] == "Not supported"
    assert Client(client.BASE_URL[: -len("/api/3")], "wrong").contacts.list_all_contacts() == {
        "message": "You are not authorized to access this resource"
    }
