-- Access rules (issue 20, SPEC §10): ordered allow/deny on networks,
-- countries, ASNs, user agents, referers, streams, protocols and dialects,
-- checked after the IP lists; and users' `countries` (SPEC §2 step 5).
--
-- An empty array is a condition the rule does not have; `negate` names the
-- conditions that match when none of their values does. The admin API
-- validates every value (src/domain/access_rule.rs); the checks here only
-- keep what no validation could fix from being stored.

CREATE TABLE access_rules (
    id          bigserial PRIMARY KEY,
    -- 1-based place in the list, dense; moves shift the others inside one
    -- transaction, so uniqueness is checked at commit.
    position    integer NOT NULL CHECK (position >= 1),
    action      text NOT NULL CHECK (action IN ('allow', 'deny')),
    enabled     boolean NOT NULL DEFAULT true,
    comment     text NOT NULL DEFAULT '',
    networks    cidr[] NOT NULL DEFAULT '{}',
    countries   text[] NOT NULL DEFAULT '{}',
    asns        bigint[] NOT NULL DEFAULT '{}',
    user_agents text[] NOT NULL DEFAULT '{}',
    referers    text[] NOT NULL DEFAULT '{}',
    streams     text[] NOT NULL DEFAULT '{}',
    protocols   text[] NOT NULL DEFAULT '{}',
    dialects    text[] NOT NULL DEFAULT '{}',
    negate      text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT access_rules_position_key UNIQUE (position) DEFERRABLE INITIALLY DEFERRED
);

-- Every replica holds the enabled rules in its policy view and re-reads
-- this small table on any change (the table-name payload, as for ip_rules).
CREATE TRIGGER access_rules_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON access_rules
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();

-- ISO 3166-1 alpha-2 codes (or XX, unknown) a user may watch from; empty:
-- anywhere. The users' triggers already announce a changed row.
ALTER TABLE users ADD COLUMN countries text[] NOT NULL DEFAULT '{}';
