-- 001: the first schema of the agent's registry. See docs/registry.md for the contract.
-- Applied in one transaction by the agent; PRAGMA user_version is set to 1 afterwards.

-- Facts about this registry: its agent id (the label that marks this agent's workloads),
-- the agent's heartbeat.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('agent_id', lower(hex(randomblob(8))));

-- Desired state: written by `agent apply` or by a master with any SQLite client.
CREATE TABLE services (
  name       TEXT PRIMARY KEY NOT NULL CHECK (name GLOB '[a-z0-9]*' AND length(name) BETWEEN 1 AND 30),
  active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  comment    TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE components (
  service    TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE ON UPDATE CASCADE,
  name       TEXT NOT NULL CHECK (name GLOB '[a-z0-9]*' AND length(name) BETWEEN 1 AND 30),
  runtime    TEXT NOT NULL CHECK (runtime IN ('container', 'unikernel')),
  image      TEXT NOT NULL,
  cmd        TEXT NOT NULL DEFAULT '[]' CHECK (json_type(cmd) = 'array'),       -- JSON array of strings
  env        TEXT NOT NULL DEFAULT '{}' CHECK (json_type(env) = 'object'),      -- JSON object of strings
  memory_mib INTEGER,
  vcpus      INTEGER,
  network    TEXT NOT NULL DEFAULT 'none',
  ports      TEXT NOT NULL DEFAULT '[]' CHECK (json_type(ports) = 'array'),     -- [{guest, host?, protocol}]
  volumes    TEXT NOT NULL DEFAULT '[]' CHECK (json_type(volumes) = 'array'),   -- [{source, target, read_only}]
  restart    TEXT NOT NULL DEFAULT 'always' CHECK (restart IN ('always', 'on-failure', 'never')),
  -- The workload name the agent derives; UNIQUE so that 'a-b'/'c' and 'a'/'b-c' cannot coexist.
  workload   TEXT GENERATED ALWAYS AS (service || '-' || name) STORED UNIQUE,
  PRIMARY KEY (service, name)
) STRICT;

-- Resources the agent hands out (IP addresses, host ports): one owner each. Used by the VM
-- runtime (SLIRP host ports, bridge IPs); the PRIMARY KEY makes a double lease impossible.
CREATE TABLE leases (
  kind      TEXT NOT NULL CHECK (kind IN ('ip', 'host_port')),
  value     TEXT NOT NULL,
  service   TEXT NOT NULL,
  component TEXT NOT NULL,
  purpose   TEXT NOT NULL DEFAULT '',
  leased_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (kind, value)
) STRICT;
CREATE INDEX leases_by_component ON leases (service, component);

-- What the agent launched and how it went: the handle to re-adopt, restart and backoff counters.
-- Written only by the agent. Not tied to components by a foreign key: a deleted component's
-- workload still has to be found and stopped.
CREATE TABLE instances (
  workload        TEXT PRIMARY KEY NOT NULL,
  service         TEXT NOT NULL,
  component       TEXT NOT NULL,
  runtime         TEXT NOT NULL,
  handle          TEXT,                -- runtime id (container id, QEMU pid...)
  spec_hash       TEXT,
  started_at      TEXT,
  restarts        INTEGER NOT NULL DEFAULT 0,
  failures        INTEGER NOT NULL DEFAULT 0,   -- consecutive failures, drives the backoff
  last_failure_at TEXT,
  next_attempt_at TEXT,                -- backoff: no action before this time
  last_error      TEXT,
  failed_spec_hash TEXT                -- the spec that failed: a new spec is tried at once
) STRICT;

-- Append-only log of what the agent did and why.
CREATE TABLE events (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  service   TEXT,
  component TEXT,
  workload  TEXT,
  action    TEXT NOT NULL,   -- start, restart, replace, remove, adopt
  reason    TEXT NOT NULL DEFAULT '',
  outcome   TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'info')),
  message   TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX events_by_component ON events (service, component, id);
