-- Binds an authorization request to the browser that started it: the hash of a secret that the
-- gateway keeps in a cookie.
ALTER TABLE auth_requests ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';

-- The per-token key from which each rotation derives the next refresh secret.
ALTER TABLE refresh_tokens ADD COLUMN rotation_key BYTEA NOT NULL DEFAULT '';
