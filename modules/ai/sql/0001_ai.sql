-- The ai module: models, conversations, usage, quotas and templates.
--
-- Models are managed by admins (/api/v1/admin/ai/models); providers come
-- from plugins.d/ai.conf, so a model names its provider by the name given
-- there. Prices are per million tokens, in the operator's currency.
--
-- Usage: one row per upstream call made for a client (ok, failed,
-- cancelled or incomplete alike), with the tokens the provider reported or,
-- when it reported none, an estimate marked estimated.
--
-- Quotas hold across instances: before a call its estimated maximum is
-- reserved in ai.quota_counters under a row lock (the UPDATE checks the
-- limit in its WHERE clause), recorded in ai.reservations, and settled to
-- the real figure after the call. A reservation whose instance died is
-- released when it expires.

CREATE SCHEMA IF NOT EXISTS ai;

CREATE TABLE ai.models (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text        NOT NULL UNIQUE
                               CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'),
    kind           text        NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat', 'embedding')),
    provider       text        NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    upstream       text        NOT NULL CHECK (length(upstream) BETWEEN 1 AND 200),
    context_window integer     NOT NULL DEFAULT 8192 CHECK (context_window > 0),
    price_input    numeric(20, 6) NOT NULL DEFAULT 0 CHECK (price_input >= 0),
    price_output   numeric(20, 6) NOT NULL DEFAULT 0 CHECK (price_output >= 0),
    fallbacks      text[]      NOT NULL DEFAULT '{}',   -- other model names, in order
    enabled        boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A conversation belongs to its user; team_id, when set, is the team its
-- usage is charged to (the user must be a member when writing to it).
CREATE TABLE ai.conversations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES plexus.users (id) ON DELETE CASCADE,
    team_id     uuid        REFERENCES plexus.teams (id) ON DELETE SET NULL,
    title       text        NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    model       text        NOT NULL,
    system      text        NOT NULL DEFAULT '' CHECK (length(system) <= 100000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_user_idx ON ai.conversations (user_id, updated_at DESC, id DESC);

-- status: complete, or incomplete when the upstream failed or the client
-- went away after part of the reply was streamed (the part is kept).
CREATE TABLE ai.messages (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid        NOT NULL REFERENCES ai.conversations (id) ON DELETE CASCADE,
    role            text        NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'complete'
                                CHECK (status IN ('complete', 'incomplete')),
    model           text,
    prompt_tokens   integer,
    completion_tokens integer,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX messages_conversation_idx ON ai.messages (conversation_id, created_at, id);

CREATE TABLE ai.usage (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    user_id           uuid,       -- plain data: history survives the user
    team_id           uuid,
    api_key_id        uuid,
    request_id        text,
    kind              text        NOT NULL,   -- chat, completions, generate, analyze, translate, embeddings, service
    model             text        NOT NULL,   -- the model asked for
    served_model      text,                   -- the model that answered (a fallback), NULL when none did
    provider          text,
    prompt_tokens     bigint      NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens bigint      NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    cost              numeric(24, 10) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    estimated         boolean     NOT NULL DEFAULT false,
    status            text        NOT NULL CHECK (status IN ('ok', 'error', 'cancelled', 'incomplete')),
    error             text,
    ttft_seconds      double precision,
    seconds           double precision
);
CREATE INDEX usage_user_idx ON ai.usage (user_id, created_at);
CREATE INDEX usage_team_idx ON ai.usage (team_id, created_at) WHERE team_id IS NOT NULL;
CREATE INDEX usage_created_idx ON ai.usage (created_at);

-- A quota limits a user or a team per day or per calendar month (UTC), in
-- tokens, in cost, or both (NULL: that dimension is not limited).
CREATE TABLE ai.quotas (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    subject_type text        NOT NULL CHECK (subject_type IN ('user', 'team')),
    subject_id   uuid        NOT NULL,
    period       text        NOT NULL CHECK (period IN ('day', 'month')),
    max_tokens   bigint      CHECK (max_tokens >= 0),
    max_cost     numeric(24, 10) CHECK (max_cost >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subject_type, subject_id, period),
    CHECK (max_tokens IS NOT NULL OR max_cost IS NOT NULL)
);

CREATE TABLE ai.quota_counters (
    quota_id        uuid        NOT NULL REFERENCES ai.quotas (id) ON DELETE CASCADE,
    period_start    date        NOT NULL,
    used_tokens     bigint      NOT NULL DEFAULT 0,
    used_cost       numeric(24, 10) NOT NULL DEFAULT 0,
    reserved_tokens bigint      NOT NULL DEFAULT 0,
    reserved_cost   numeric(24, 10) NOT NULL DEFAULT 0,
    PRIMARY KEY (quota_id, period_start)
);

CREATE TABLE ai.reservations (
    id           uuid        NOT NULL,    -- one id per call, shared by its rows
    quota_id     uuid        NOT NULL,
    period_start date        NOT NULL,
    tokens       bigint      NOT NULL,
    cost         numeric(24, 10) NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (id, quota_id),
    FOREIGN KEY (quota_id, period_start)
        REFERENCES ai.quota_counters (quota_id, period_start) ON DELETE CASCADE
);
CREATE INDEX reservations_expiry_idx ON ai.reservations (expires_at);

-- Team templates for /api/v1/ai/generate: body with {{variables}}, and an
-- optional JSON Schema the reply must match.
CREATE TABLE ai.templates (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id       uuid        NOT NULL REFERENCES plexus.teams (id) ON DELETE CASCADE,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    system        text        NOT NULL DEFAULT '' CHECK (length(system) <= 20000),
    body          text        NOT NULL CHECK (length(body) BETWEEN 1 AND 50000),
    variables     jsonb       NOT NULL DEFAULT '[]',   -- ["destination", "days"]
    output_schema jsonb,
    model         text,
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);
