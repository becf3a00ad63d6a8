-- txprobe: what the transaction, event and job probes record
CREATE SCHEMA IF NOT EXISTS txprobe;

CREATE TABLE txprobe.items (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE txprobe.counter (
    id integer PRIMARY KEY,
    n  integer NOT NULL
);
INSERT INTO txprobe.counter VALUES (1, 0);

CREATE TABLE txprobe.deliveries (
    event_id text NOT NULL,
    topic    text NOT NULL,
    value    text,
    job_id   uuid NOT NULL
);

CREATE TABLE txprobe.lease_results (
    job_id    uuid PRIMARY KEY,
    first     text NOT NULL,
    second    text NOT NULL,
    lease_s   double precision NOT NULL
);

CREATE TABLE txprobe.wakes (
    job_id   uuid PRIMARY KEY,
    instance text NOT NULL,
    ran_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE txprobe.ticks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance   text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at   timestamptz
);

-- checked only at COMMIT: two equal keys in one transaction make the
-- COMMIT itself fail
CREATE TABLE txprobe.deferred (
    k text NOT NULL,
    CONSTRAINT deferred_k_key UNIQUE (k) DEFERRABLE INITIALLY DEFERRED
);

-- a row here ends the session during COMMIT (a deferred trigger that
-- terminates its own backend): the client cannot tell whether it committed
CREATE TABLE txprobe.doomed (id integer);
CREATE FUNCTION txprobe.end_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER doomed_at_commit AFTER INSERT ON txprobe.doomed
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION txprobe.end_session();
