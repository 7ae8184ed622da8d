-- Signed playback links (issue 19, SPEC §9): the keys links are signed
-- with, and the nonces of `once` links already used.
--
-- A key's secret is kept as given: verifying an HMAC needs the key itself,
-- so it cannot be hashed like a token. The admin API answers it once, at
-- creation, and never logs or audits it.

CREATE TABLE signing_keys (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,32}$'),
    format     text NOT NULL CHECK (format IN ('playgate', 'securetoken', 'nginx', 'wowza', 'akamai')),
    secret     text NOT NULL CHECK (octet_length(secret) BETWEEN 16 AND 256),
    -- Per format (src/admin/signing_keys.rs validates them); defaults apply when absent.
    options    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    comment    text NOT NULL DEFAULT '',
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every replica holds the enabled keys in its policy view: any change tells
-- them to re-read this (small) table, as for packages and ip_rules (V1's
-- table-name payload; V7 kept that form for the small tables). A TRUNCATE
-- sends the same payload, which re-reads the table just as well.
CREATE TRIGGER signing_keys_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();

-- The nonce of a `once` link, remembered until the link expires (so it
-- starts one session only, across replicas: the primary key decides). No
-- foreign key: a key deleted while its links are remembered must not make
-- the insert fail, and the rows go by themselves at `expires_at`.
CREATE TABLE link_uses (
    nonce      text PRIMARY KEY,
    key_id     text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);
-- For the sweeper that deletes the expired ones.
CREATE INDEX link_uses_expires_idx ON link_uses (expires_at);
