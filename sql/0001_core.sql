-- 0001_core.sql - the core's own tables, in schema "plexus"
--
-- plexus.schema_migrations is created by the migration runner itself,
-- before this file runs, because it records this file too.

CREATE SCHEMA IF NOT EXISTS plexus;

-- Durable jobs (core/jobs.c). A row is queued until due (run_at), then
-- claimed by one worker with FOR UPDATE SKIP LOCKED and leased until
-- locked_until; an expired lease makes it claimable again. It ends done,
-- or dead after max_attempts with the last error.
CREATE TABLE plexus.jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    handler      text NOT NULL CHECK (handler <> ''),
    payload      jsonb NOT NULL DEFAULT 'null'::jsonb,
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    locked_by    text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

-- claiming: due queued jobs by run_at, and running jobs whose lease expired
CREATE INDEX jobs_due_idx ON plexus.jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON plexus.jobs (locked_until) WHERE state = 'running';
-- operators look for what died
CREATE INDEX jobs_dead_idx ON plexus.jobs (finished_at) WHERE state = 'dead';
