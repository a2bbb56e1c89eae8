-- The client that asked for a device code: only it may poll for the tokens.
ALTER TABLE device_tokens ADD COLUMN client_id TEXT NOT NULL DEFAULT '';

-- What remains of redeemed codes and revoked access tokens until they would have expired.
CREATE TABLE tombstones (
    id     TEXT   NOT NULL PRIMARY KEY,
    data   TEXT   NOT NULL,
    expiry BIGINT NOT NULL
);
CREATE INDEX tombstones_expiry ON tombstones (expiry);

-- clientCredentialsClaims.groups of a client (JSON list).
ALTER TABLE clients ADD COLUMN client_credentials_groups TEXT NOT NULL DEFAULT '[]';
