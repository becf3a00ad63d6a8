-- The example module's own schema: what its job records.
CREATE SCHEMA IF NOT EXISTS example;

CREATE TABLE example.records (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message    text        NOT NULL CHECK (length(message) <= 10000),
    attempt    integer     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
