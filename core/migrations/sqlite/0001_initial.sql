-- Oxidex storage schema for SQLite.
--
-- Conventions (shared with the Postgres schema; see core/src/storage/sql/records.rs):
-- * times are INTEGER microseconds since the Unix epoch: UTC instants, independent of any
--   time zone;
-- * lists, maps, claims and keys are JSON documents in TEXT columns;
-- * booleans are INTEGER 0/1; opaque bytes are BLOB.
-- Tables are STRICT so that a value of the wrong type is an error, not a silent conversion.

CREATE TABLE clients (
    id                 TEXT    NOT NULL PRIMARY KEY,
    secret             TEXT    NOT NULL,
    redirect_uris      TEXT    NOT NULL,
    trusted_peers      TEXT    NOT NULL,
    public             INTEGER NOT NULL,
    name               TEXT    NOT NULL,
    logo_url           TEXT    NOT NULL,
    allowed_connectors TEXT    NOT NULL
) STRICT;

-- The email is stored lower-cased: it is the case-insensitive key.
CREATE TABLE passwords (
    email              TEXT    NOT NULL PRIMARY KEY,
    hash               BLOB    NOT NULL,
    username           TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    preferred_username TEXT    NOT NULL,
    email_verified     INTEGER,
    user_id            TEXT    NOT NULL,
    groups             TEXT    NOT NULL
) STRICT;

CREATE TABLE connectors (
    id               TEXT NOT NULL PRIMARY KEY,
    type             TEXT NOT NULL,
    name             TEXT NOT NULL,
    resource_version TEXT NOT NULL,
    config           BLOB NOT NULL,
    grant_types      TEXT NOT NULL
) STRICT;

-- A single row, id 'keys'.
CREATE TABLE keys (
    id                TEXT    NOT NULL PRIMARY KEY CHECK (id = 'keys'),
    signing_key       TEXT    NOT NULL,
    next_key          TEXT    NOT NULL,
    verification_keys TEXT    NOT NULL,
    next_rotation     INTEGER NOT NULL
) STRICT;

CREATE TABLE refresh_tokens (
    id             TEXT    NOT NULL PRIMARY KEY,
    token          TEXT    NOT NULL,
    obsolete_token TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_used      INTEGER NOT NULL,
    client_id      TEXT    NOT NULL,
    connector_id   TEXT    NOT NULL,
    connector_data BLOB    NOT NULL,
    claims         TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    nonce          TEXT    NOT NULL
) STRICT;

CREATE TABLE offline_sessions (
    user_id        TEXT NOT NULL,
    conn_id        TEXT NOT NULL,
    refresh        TEXT NOT NULL,
    connector_data BLOB NOT NULL,
    PRIMARY KEY (user_id, conn_id)
) STRICT;

CREATE TABLE auth_requests (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    response_types        TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    nonce                 TEXT    NOT NULL,
    state                 TEXT    NOT NULL,
    force_approval_prompt INTEGER NOT NULL,
    expiry                INTEGER NOT NULL,
    logged_in             INTEGER NOT NULL,
    claims                TEXT    NOT NULL,
    connector_id          TEXT    NOT NULL,
    connector_data        BLOB    NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL,
    hmac_key              BLOB    NOT NULL
) STRICT;
CREATE INDEX auth_requests_expiry ON auth_requests (expiry);

CREATE TABLE auth_codes (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    nonce                 TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,
    connector_id          TEXT    NOT NULL,
    connector_data        BLOB    NOT NULL,
    claims                TEXT    NOT NULL,
    expiry                INTEGER NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL
) STRICT;
CREATE INDEX auth_codes_expiry ON auth_codes (expiry);

CREATE TABLE device_requests (
    user_code   TEXT    NOT NULL PRIMARY KEY,
    device_code TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    expiry      INTEGER NOT NULL
) STRICT;
CREATE INDEX device_requests_expiry ON device_requests (expiry);

CREATE TABLE device_tokens (
    device_code           TEXT    NOT NULL PRIMARY KEY,
    status                TEXT    NOT NULL,
    token                 TEXT    NOT NULL,
    expiry                INTEGER NOT NULL,
    last_request_time     INTEGER NOT NULL,
    poll_interval_seconds INTEGER NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL
) STRICT;
CREATE INDEX device_tokens_expiry ON device_tokens (expiry);
