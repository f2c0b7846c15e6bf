"""System automations (`kind: system`): runs started by a schedule tick or a finished job, with
no contact; job steps, waits, `if` on the previous job's outcome, notifications.

`schedule` computes ticks (cron in a time zone, or every N minutes); `starts` turns ticks and
finished events into runs, exactly once each (a `system_ticks` row with a unique key);
`runs` advances the runs step by step; `scheduler.SystemScheduler` is the loop in
`tidings worker`."""
