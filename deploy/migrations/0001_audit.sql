-- Every platform action the actioners did, skipped or failed: what, to whom, why, with which
-- model and policy. One row per action_id, so a replayed ActionResult is recorded once.
CREATE TABLE action_audit (
  action_id text PRIMARY KEY,
  message_id text NOT NULL,
  platform text NOT NULL,
  community text NOT NULL,
  channel text NOT NULL,
  user_id text NOT NULL,
  kind text NOT NULL,
  status text NOT NULL,
  executor text NOT NULL,
  detail text NOT NULL DEFAULT '',
  reason text NOT NULL,
  severity text NOT NULL,
  p_toxic double precision NOT NULL,
  model_version text NOT NULL,
  policy_version text NOT NULL,
  sent_at timestamptz NOT NULL,
  requested_at timestamptz NOT NULL,
  completed_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);

-- "What happened to this message?" (disputes, explanations).
CREATE INDEX action_audit_message_idx ON action_audit (message_id);
-- "What happened to this user lately?" (strike history, moderator review).
CREATE INDEX action_audit_user_idx ON action_audit (platform, community, user_id, recorded_at);
