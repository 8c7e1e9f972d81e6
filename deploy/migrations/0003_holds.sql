-- Review holds and the labels behind each decision (livestream policies, issue #12).

-- A line held for a moderator (ActionKind.HOLD): a borderline line the policy would not act on
-- by itself, or a ban that needs a moderator's confirmation (`held_action` = 'ban'). Written in
-- the same transaction as its decision and ledger entry, once per message; the review queue
-- lists the rows nobody has reviewed yet.
CREATE TABLE holds (
  message_id text PRIMARY KEY,
  action_id text NOT NULL,
  platform text NOT NULL,
  community text NOT NULL,
  channel text NOT NULL,
  user_id text NOT NULL,
  text text NOT NULL,
  labels text[] NOT NULL DEFAULT '{}',
  severity text NOT NULL,
  p_toxic double precision NOT NULL,
  held_action text NOT NULL CHECK (held_action IN ('review', 'ban')),
  shadow boolean NOT NULL DEFAULT false,
  reason text NOT NULL,
  policy_version text NOT NULL,
  model_version text NOT NULL,
  held_at timestamptz NOT NULL DEFAULT now(),
  reviewed_at timestamptz,
  reviewed_by text,
  outcome text
);
CREATE INDEX holds_open_idx ON holds (platform, community, held_at) WHERE reviewed_at IS NULL;

-- The labels that acted on (or held) a message, for `warden explain` and appeals.
ALTER TABLE decisions ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
