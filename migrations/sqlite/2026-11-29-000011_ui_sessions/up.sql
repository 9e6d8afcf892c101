-- Sessions of the web pages: a browser signs in once with an API token and then holds a
-- random session id in an HttpOnly cookie. Only the id's SHA-256 is stored; the session acts
-- as its token (revoking the token ends it) and carries the CSRF token of its forms.
CREATE TABLE ui_sessions (
    id_hash TEXT PRIMARY KEY,
    token_id BIGINT NOT NULL REFERENCES api_tokens (id),
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
