-- Oxidex storage schema for PostgreSQL.
--
-- Conventions (shared with the SQLite schema; see core/src/storage/sql/records.rs):
-- * times are BIGINT microseconds since the Unix epoch: UTC instants, independent of any
--   time zone;
-- * lists, maps, claims and keys are JSON documents in TEXT columns;
-- * opaque bytes are BYTEA.

CREATE TABLE clients (
    id                 TEXT    NOT NULL PRIMARY KEY,
    secret             TEXT    NOT NULL,
    redirect_uris      TEXT    NOT NULL,
    trusted_peers      TEXT    NOT NULL,
    public             BOOLEAN NOT NULL,
    name               TEXT    NOT NULL,
    logo_url           TEXT    NOT NULL,
    allowed_connectors TEXT    NOT NULL
);

-- The email is stored lower-cased: it is the case-insensitive key.
CREATE TABLE passwords (
    email              TEXT    NOT NULL PRIMARY KEY,
    hash               BYTEA   NOT NULL,
    username           TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    preferred_username TEXT    NOT NULL,
    email_verified     BOOLEAN,
    user_id            TEXT    NOT NULL,
    groups             TEXT    NOT NULL
);

CREATE TABLE connectors (
    id               TEXT NOT NULL PRIMARY KEY,
    type             TEXT NOT NULL,
    name             TEXT NOT NULL,
    resource_version TEXT NOT NULL,
    config           BYTEA NOT NULL,
    grant_types      TEXT NOT NULL
);

-- A single row, id 'keys'.
CREATE TABLE keys (
    id                TEXT    NOT NULL PRIMARY KEY CHECK (id = 'keys'),
    signing_key       TEXT    NOT NULL,
    next_key          TEXT    NOT NULL,
    verification_keys TEXT    NOT NULL,
    next_rotation     BIGINT  NOT NULL
);

CREATE TABLE refresh_tokens (
    id             TEXT    NOT NULL PRIMARY KEY,
    token          TEXT    NOT NULL,
    obsolete_token TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    last_used      BIGINT  NOT NULL,
    client_id      TEXT    NOT NULL,
    connector_id   TEXT    NOT NULL,
    connector_data BYTEA   NOT NULL,
    claims         TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    nonce          TEXT    NOT NULL
);

CREATE TABLE offline_sessions (
    user_id        TEXT NOT NULL,
    conn_id        TEXT NOT NULL,
    refresh        TEXT NOT NULL,
    connector_data BYTEA NOT NULL,
    PRIMARY KEY (user_id, conn_id)
);

CREATE TABLE auth_requests (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    response_types        TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    nonce                 TEXT    NOT NULL,
    state                 TEXT    NOT NULL,
    force_approval_prompt BOOLEAN NOT NULL,
    expiry                BIGINT  NOT NULL,
    logged_in             BOOLEAN NOT NULL,
    claims                TEXT    NOT NULL,
    connector_id          TEXT    NOT NULL,
    connector_data        BYTEA   NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL,
    hmac_key              BYTEA   NOT NULL
);
CREATE INDEX auth_requests_expiry ON auth_requests (expiry);

CREATE TABLE auth_codes (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    nonce                 TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,
    connector_id          TEXT    NOT NULL,
    connector_data        BYTEA   NOT NULL,
    claims                TEXT    NOT NULL,
    expiry                BIGINT  NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL
);
CREATE INDEX auth_codes_expiry ON auth_codes (expiry);

CREATE TABLE device_requests (
    user_code   TEXT    NOT NULL PRIMARY KEY,
    device_code TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    expiry      BIGINT  NOT NULL
);
CREATE INDEX device_requests_expiry ON device_requests (expiry);

CREATE TABLE device_tokens (
    device_code           TEXT    NOT NULL PRIMARY KEY,
    status                TEXT    NOT NULL,
    token                 TEXT    NOT NULL,
    expiry                BIGINT  NOT NULL,
    last_request_time     BIGINT  NOT NULL,
    poll_interval_seconds BIGINT  NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL
);
CREATE INDEX device_tokens_expiry ON device_tokens (expiry);
