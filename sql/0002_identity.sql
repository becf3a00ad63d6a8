-- Identity: accounts, sessions and refresh tokens, second factor, email
-- tokens, API keys, teams, the audit log and login throttling.
--
-- Secrets are never stored in the clear: passwords as argon2id PHC
-- strings, refresh/API/email tokens and recovery codes as SHA-256 digests
-- (they are random, 256-bit, so a fast hash is enough), TOTP secrets
-- sealed with AES-256-GCM under a key named by mfa_key_id.
--
-- Cascades: deleting a user deletes their sessions, tokens, keys and
-- memberships; a team's memberships go with the team. Audit rows keep the
-- actor's id as plain data (no foreign key) so history survives deletion.

CREATE TABLE plexus.users (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email               text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash       text        NOT NULL,
    role                text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified_at   timestamptz,
    disabled_at         timestamptz,
    mfa_secret          text,       -- "<key id>:<base64 nonce|ciphertext|tag>"
    mfa_enabled_at      timestamptz,
    mfa_last_step       bigint,     -- last accepted TOTP time step: no replay
    failed_logins       integer     NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON plexus.users (lower(email));

-- A session is one login: its refresh tokens form one family.
CREATE TABLE plexus.sessions (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid        NOT NULL REFERENCES plexus.users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    user_agent     text        CHECK (length(user_agent) <= 512),
    ip             text        CHECK (length(ip) <= 64)
);
CREATE INDEX sessions_user_idx ON plexus.sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE plexus.refresh_tokens (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id  uuid        NOT NULL REFERENCES plexus.sessions (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,            -- set when rotated: a second use is reuse
    expires_at  timestamptz NOT NULL
);
CREATE INDEX refresh_tokens_session_idx ON plexus.refresh_tokens (session_id);

CREATE TABLE plexus.mfa_recovery_codes (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES plexus.users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, code_hash)
);

-- Single-use, expiring links sent by email.
CREATE TABLE plexus.email_tokens (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES plexus.users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash bytea       NOT NULL UNIQUE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user_idx ON plexus.email_tokens (user_id, purpose);

-- "plx_<prefix>_<secret>": the prefix finds the row, the digest proves it.
CREATE TABLE plexus.api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid        NOT NULL REFERENCES plexus.users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix       text        NOT NULL UNIQUE CHECK (length(prefix) BETWEEN 8 AND 32),
    key_hash     bytea       NOT NULL,
    scopes       text[]      NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_idx ON plexus.api_keys (user_id, created_at DESC);

CREATE TABLE plexus.teams (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_by uuid        REFERENCES plexus.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plexus.team_members (
    team_id    uuid        NOT NULL REFERENCES plexus.teams (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES plexus.users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON plexus.team_members (user_id);

CREATE TABLE plexus.audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid,
    action      text        NOT NULL,
    target_type text,
    target_id   text,
    ip          text,
    request_id  text,
    details     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON plexus.audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor_idx ON plexus.audit_log (actor_id, at DESC);
CREATE INDEX audit_log_action_idx ON plexus.audit_log (action, at DESC);

-- Failed logins per client address, shared by every instance.
CREATE TABLE plexus.login_throttle (
    address      text        PRIMARY KEY CHECK (length(address) <= 64),
    failures     integer     NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz
);
