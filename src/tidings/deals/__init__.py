"""The deals CRM (SPEC D1): users, pipelines and stages, deals, tasks, notes, deal fields,
deal scoring and reports.

Only this package writes its tables; every change of a deal writes an activity row (carrying
the deal id, and the deal's primary contact as contact_id) in the same transaction.
"""
