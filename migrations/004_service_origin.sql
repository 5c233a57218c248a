-- 004: where a service came from. 'local': applied on this node (`agent apply`, an operator's
-- SQL); 'master': sent by a master (`agent apply --origin master`, what `agent fleet apply`
-- runs). A master's prune deletes only its own services, never one an operator applied here.
ALTER TABLE services ADD COLUMN origin TEXT NOT NULL DEFAULT 'local' CHECK (origin IN ('local', 'master'));
