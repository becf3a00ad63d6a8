-- The webhooks module: endpoints that receive deliveries from a provider,
-- their secrets, and the deliveries received.
--
-- Every row carries the team_id of the team it belongs to; every query
-- the module runs filters on the caller's membership in that team through
-- the core's plexus.team_members (access control lives in the query).
--
-- Cascades: deleting a team deletes its endpoints; deleting an endpoint
-- deletes its secrets and its received events. created_by is plain data,
-- without a foreign key, so history survives the user.
--
-- direction is 'inbound' only in this version. Outbound subscriptions
-- (what this server sends, signed as Standard Webhooks) reuse endpoints
-- with direction 'outbound' and a target url in config, and the events
-- table with their own delivery attempts in a table of their own; the
-- CHECKs below widen then.

CREATE SCHEMA IF NOT EXISTS webhooks;

CREATE TABLE webhooks.endpoints (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id     uuid        NOT NULL REFERENCES plexus.teams (id) ON DELETE CASCADE,
    direction   text        NOT NULL DEFAULT 'inbound' CHECK (direction IN ('inbound')),
    provider    text        NOT NULL CHECK (provider IN
                    ('stripe', 'github', 'slack', 'standard', 'clickup', 'notion', 'hmac')),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- the hmac scheme's settings (header, algorithm, encoding, prefix);
    -- '{}' for the named providers
    config      jsonb       NOT NULL DEFAULT '{}'
                            CHECK (jsonb_typeof(config) = 'object'
                                   AND octet_length(config::text) <= 4096),
    -- deliveries refused (forged, stale, unsigned, malformed): counted,
    -- never stored, so that a flood of forgeries costs no disk
    refused     bigint      NOT NULL DEFAULT 0,
    last_refused_at timestamptz,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, team_id)    -- target of the events' composite foreign key
);
CREATE INDEX endpoints_team_idx ON webhooks.endpoints (team_id, created_at, id);

-- Several secrets at once, so that a provider's secret can be rotated
-- without refusing deliveries in between: add the new one, then remove the
-- old. Each is sealed with the core's secret sealing, bound to the id of
-- its endpoint, so a sealed value copied to another row does not open.
-- The module keeps at most 4 per endpoint (the insert counts them).
CREATE TABLE webhooks.secrets (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id uuid        NOT NULL REFERENCES webhooks.endpoints (id) ON DELETE CASCADE,
    sealed      text        NOT NULL CHECK (length(sealed) <= 2048),
    -- what a client is shown instead: the last 4 characters
    hint        text        NOT NULL CHECK (length(hint) <= 4),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX secrets_endpoint_idx ON webhooks.secrets (endpoint_id, created_at);

-- Deliveries that passed verification, and handshakes (Notion's
-- verification token) waiting for an operator. The raw body is kept
-- byte for byte: it is what was signed. provider_event_id is the
-- provider's own id (Stripe's and Notion's event id, GitHub's delivery
-- GUID, Standard Webhooks' webhook-id); a second delivery of the same id
-- hits the unique key and is not published again. It is NULL when the
-- provider gives none (NULLs never collide).
CREATE TABLE webhooks.events (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id           uuid        NOT NULL,
    endpoint_id       uuid        NOT NULL,
    provider          text        NOT NULL,
    provider_event_id text        CHECK (length(provider_event_id) BETWEEN 1 AND 256),
    event_type        text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 200),
    headers           jsonb       NOT NULL CHECK (jsonb_typeof(headers) = 'object'
                                                  AND octet_length(headers::text) <= 16384),
    body              bytea       NOT NULL CHECK (octet_length(body) <= 1048576),
    verification      text        NOT NULL CHECK (verification IN ('verified', 'handshake')),
    state             text        NOT NULL CHECK (state IN ('published', 'pending')),
    replays           integer     NOT NULL DEFAULT 0,
    received_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, provider_event_id),
    FOREIGN KEY (endpoint_id, team_id)
        REFERENCES webhooks.endpoints (id, team_id) ON DELETE CASCADE
);
-- GET /api/v1/webhooks/events: a team's events, newest first
CREATE INDEX events_team_idx ON webhooks.events (team_id, received_at DESC, id DESC);
CREATE INDEX events_endpoint_idx ON webhooks.events (endpoint_id, received_at DESC, id DESC);
