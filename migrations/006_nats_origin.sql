-- 006: a third origin of a service, 'nats': written by the agent's NATS source from the fleet's
-- JetStream KV bucket (desired.<node>.<service>). The source deletes and updates only services of
-- this origin. SQLite cannot change a CHECK in place: the table is rebuilt (the migration runs with
-- foreign keys off, so the components that reference services stay; they are checked before commit).
CREATE TABLE services_new (
  name       TEXT PRIMARY KEY NOT NULL CHECK (name GLOB '[a-z0-9]*' AND length(name) BETWEEN 1 AND 30),
  active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  comment    TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  origin     TEXT NOT NULL DEFAULT 'local' CHECK (origin IN ('local', 'master', 'nats'))
) STRICT;
INSERT INTO services_new (name, active, comment, updated_at, origin) SELECT name, active, comment, updated_at, origin FROM services;
DROP TABLE services;
ALTER TABLE services_new RENAME TO services;
