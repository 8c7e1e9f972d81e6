-- The actioner's state: community policies (versioned), strikes, the decision per message and
-- the action ledger that makes every platform action happen at most once.

-- Every change to a community's policy is a new row; the highest version is the one in force.
-- `document` is the whole policy (actioners.policy.Policy as JSON), so any version can be shown
-- and any past decision explained with the exact rules it was made under.
CREATE TABLE policies (
  platform text NOT NULL,
  community text NOT NULL,
  version integer NOT NULL CHECK (version > 0),
  document jsonb NOT NULL,
  author text NOT NULL,
  note text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (platform, community, version)
);

-- One row per message the policy acted on (or would have, in shadow mode): the rule, the
-- threshold and the strike count behind it. A verdict delivered again finds its row and decides
-- nothing new, so strikes are counted once per message.
CREATE TABLE decisions (
  message_id text PRIMARY KEY,
  platform text NOT NULL,
  community text NOT NULL,
  channel text NOT NULL,
  user_id text NOT NULL,
  policy_version text NOT NULL,
  model_version text NOT NULL,
  severity text NOT NULL,
  rule text NOT NULL,
  strikes_added integer NOT NULL,
  strikes_active integer NOT NULL,
  shadow boolean NOT NULL,
  reason text NOT NULL,
  decided_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_user_idx ON decisions (platform, community, user_id, decided_at);

-- Strikes per user per community; a strike counts until it expires (the policy's decay) or is
-- pardoned. Shadow-mode strikes are kept apart: they feed shadow decisions only.
CREATE TABLE strikes (
  id bigserial PRIMARY KEY,
  platform text NOT NULL,
  community text NOT NULL,
  user_id text NOT NULL,
  message_id text UNIQUE,
  points integer NOT NULL CHECK (points > 0),
  shadow boolean NOT NULL DEFAULT false,
  reason text NOT NULL,
  policy_version text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  pardoned_at timestamptz,
  pardoned_by text,
  pardon_reason text
);
CREATE INDEX strikes_user_idx ON strikes (platform, community, user_id, expires_at);

-- Who pardoned whom, when and why (also when no strike was active).
CREATE TABLE pardons (
  id bigserial PRIMARY KEY,
  platform text NOT NULL,
  community text NOT NULL,
  user_id text NOT NULL,
  moderator text NOT NULL,
  reason text NOT NULL,
  strikes_cleared integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The action ledger: the intent is recorded before the platform is called ('pending' ->
-- 'in_flight' -> 'done' | 'skipped' | 'failed'). An entry found 'in_flight' after a restart is
-- reconciled (checked on the platform, or finished with an idempotent call), never blindly
-- repeated. `published` turns true once its ActionResult is on moderation.actions.v1.
CREATE TABLE action_ledger (
  action_id text PRIMARY KEY,
  message_id text NOT NULL,
  platform text NOT NULL,
  community text NOT NULL,
  user_id text NOT NULL,
  kind text NOT NULL,
  severity text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'skipped', 'failed')),
  request jsonb NOT NULL,
  detail text NOT NULL DEFAULT '',
  executor text NOT NULL DEFAULT '',
  attempts integer NOT NULL DEFAULT 0,
  source_topic text NOT NULL,
  source_partition integer NOT NULL,
  source_offset bigint NOT NULL,
  published boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz
);
CREATE INDEX action_ledger_message_idx ON action_ledger (message_id);
-- What a restarted actioner must look at for the partitions it was given.
CREATE INDEX action_ledger_open_idx ON action_ledger (source_topic, source_partition)
  WHERE state IN ('pending', 'in_flight') OR NOT published;

-- A timeout's length, for the audit trail and appeals.
ALTER TABLE action_audit ADD COLUMN duration_s integer;
