"""The ActiveCampaign API v3-compatible layer, mounted at /api/3 (SPEC X5).

Existing ActiveCampaign clients move to Tidings by changing the base URL and the token (a
Tidings API key in the `Api-Token` header). Each module maps one group of ActiveCampaign
resources onto the domain services, never writing a table itself, so activities, triggers
and the sending policy apply exactly as for /api/v1:

- `envelopes`, `errors`, `bodies`: the conventions (envelopes, meta, string ids,
  limit/offset, filters/orders, the error shapes, lenient bodies);
- `contacts`, `contact_links`, `related`: contacts, contact/sync, contactTags, contactLists,
  side-loads, activities;
- `catalog`: tags, lists, fields, field options, fieldValues;
- `automations`: automations and contactAutomations;
- `deals`, `deal_work`: deals, dealGroups, dealStages, dealTasks, dealTasktypes, notes, users;
- `webhooks`, `tracking`: webhook subscriptions and event tracking.

`mount.create_ac_app` assembles them; anything else under /api/3 is a 404 saying that it is
not supported.
"""
