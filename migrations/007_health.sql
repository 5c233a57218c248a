-- 007: health checks. A component's `health` table (manifest.md) is stored as a JSON object beside
-- its other columns, NULL when it has none. The agent keeps each workload's probe results in memory
-- and writes them to its instances row when they change state (a transition, or a failure count
-- that moved): the registry shows the last verdict to a master and to `status` without an agent.
ALTER TABLE components ADD COLUMN health TEXT CHECK (health IS NULL OR json_type(health) = 'object');
ALTER TABLE instances ADD COLUMN health_status TEXT CHECK (health_status IS NULL OR health_status IN ('starting', 'healthy', 'unhealthy'));
ALTER TABLE instances ADD COLUMN health_failures INTEGER NOT NULL DEFAULT 0;   -- failed probes in a row
ALTER TABLE instances ADD COLUMN health_output TEXT;                          -- the last probe's output (cut to 500 chars)
ALTER TABLE instances ADD COLUMN health_checked_at TEXT;                      -- when that probe ended
ALTER TABLE instances ADD COLUMN health_since TEXT;                           -- when health_status last changed
ALTER TABLE instances ADD COLUMN health_run TEXT;                             -- the run it is about: its handle (container id, QEMU pid)
