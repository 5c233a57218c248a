-- 005: the spec an instance was started from, beside its hash (instances.spec_hash), so that
-- `agent status` and `agent plan` can name the fields a spec change touches (`memory 64 → 96`)
-- instead of two hashes. Written by the agent when it starts or adopts a workload; NULL for one
-- started before this migration (the reason then falls back to the hashes).
ALTER TABLE instances ADD COLUMN spec_json TEXT CHECK (spec_json IS NULL OR json_type(spec_json) = 'object');
