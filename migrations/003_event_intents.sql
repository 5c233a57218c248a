-- 003: the events log records an action's intent before the agent touches a runtime (outcome
-- 'pending') and its outcome after (the same row updated). An intent left 'pending' by an agent
-- that died (kill -9) is marked 'interrupted' by the next agent that claims the registry, so the
-- log stays true across crashes. SQLite cannot change a CHECK in place: the table is rebuilt,
-- keeping every row and its id.
CREATE TABLE events_new (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  service   TEXT,
  component TEXT,
  workload  TEXT,
  action    TEXT NOT NULL,   -- start, restart, replace, remove, adopt, isolate
  reason    TEXT NOT NULL DEFAULT '',
  outcome   TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'info', 'pending', 'interrupted')),
  message   TEXT NOT NULL DEFAULT ''
) STRICT;
INSERT INTO events_new (id, at, service, component, workload, action, reason, outcome, message)
  SELECT id, at, service, component, workload, action, reason, outcome, message FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_by_component ON events (service, component, id);
-- Intents still open: few at any time, found at once at agent start.
CREATE INDEX events_pending ON events (id) WHERE outcome = 'pending';
