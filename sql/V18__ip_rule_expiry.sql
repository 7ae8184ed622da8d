-- Temporary bans (issue 22; SPEC §4 `PATCH /api/v1/ip-rules/{id}`): a rule
-- with an `expires_at` stops applying at that time; null = for good. Writes
-- notify the policy view through V1's trigger, as before; the view itself
-- drops a rule when its time comes (src/policy_view).
ALTER TABLE ip_rules ADD COLUMN expires_at timestamptz;
