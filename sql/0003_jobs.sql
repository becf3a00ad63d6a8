-- 0003_jobs.sql - jobs of plugin API 1.4: unique keys and recurring jobs

-- plx_job_opts_t.unique_key: at most one job per handler and key, ever
ALTER TABLE plexus.jobs ADD COLUMN unique_key text
    CHECK (octet_length(unique_key) BETWEEN 1 AND 200);
CREATE UNIQUE INDEX jobs_unique_key_idx ON plexus.jobs (handler, unique_key)
    WHERE unique_key IS NOT NULL;

-- plx_job_recurring_add (core/jobs.c): one row per module and name. An
-- instance claims a due row by leasing it (locked_until, as a job) and
-- moving next_run_at to the next slot of the schedule, runs it, then
-- releases the lease.
CREATE TABLE plexus.recurring_jobs (
    module        text NOT NULL CHECK (module <> ''),
    name          text NOT NULL CHECK (name <> ''),
    every_seconds integer NOT NULL CHECK (every_seconds >= 1),
    next_run_at   timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz,
    locked_by     text,
    last_run_at   timestamptz,
    last_error    text,
    PRIMARY KEY (module, name)
);
