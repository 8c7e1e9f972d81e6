-- The moderators' review queue (issue #13): moderator accounts and the communities they
-- moderate, disputes, reviews (the audit of every moderator decision), stored explanations, and
-- the verdict snapshot a review page shows.

-- Moderators sign in to `warden review` with a name and a password. The password is kept as
-- hashlib.scrypt's output with its salt and parameters ("scrypt$n$r$p$salt$hash", base64), so
-- the cost can be raised later without losing older hashes.
CREATE TABLE moderators (
  name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  disabled boolean NOT NULL DEFAULT false
);

-- Which communities a moderator sees: every page and query is filtered by these rows.
CREATE TABLE moderator_communities (
  moderator text NOT NULL REFERENCES moderators (name) ON DELETE CASCADE,
  platform text NOT NULL,
  community text NOT NULL,
  granted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (moderator, platform, community)
);

-- One row per disputed message (the decided message the dispute is about; a dispute naming
-- another message of the user, such as Twitch's `!dispute` command line, is attached to the
-- user's latest action in the community). Repeated disputes of it add to `count`.
CREATE TABLE disputes (
  id bigserial PRIMARY KEY,
  message_id text NOT NULL,
  action_id text,
  platform text NOT NULL,
  community text NOT NULL,
  user_id text NOT NULL,
  reason text NOT NULL DEFAULT '',
  source text NOT NULL DEFAULT '',
  count integer NOT NULL DEFAULT 1 CHECK (count > 0),
  state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'upheld', 'overturned')),
  opened_at timestamptz NOT NULL DEFAULT now(),
  last_at timestamptz NOT NULL DEFAULT now(),
  resolved_by text,
  resolved_at timestamptz,
  note text,
  UNIQUE (platform, community, message_id)
);
CREATE INDEX disputes_open_idx ON disputes (platform, community, opened_at) WHERE state = 'open';

-- Each dispute event once (a redelivered Feedback does not count twice), with its own words.
CREATE TABLE dispute_feedback (
  feedback_id text PRIMARY KEY,
  dispute_id bigint NOT NULL REFERENCES disputes (id) ON DELETE CASCADE,
  disputed_message_id text NOT NULL,
  reason text NOT NULL DEFAULT '',
  source text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);

-- Every moderator decision in the review service: uphold, overturn, approve or dismiss a hold.
-- `published` turns true once its Feedback is on moderation.feedback.v1 (re-sent at start
-- otherwise, with the same feedback_id "review:<id>").
CREATE TABLE reviews (
  id bigserial PRIMARY KEY,
  message_id text NOT NULL,
  platform text NOT NULL,
  community text NOT NULL,
  moderator text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('upheld', 'overturned', 'hold_approved', 'hold_dismissed')),
  note text NOT NULL CHECK (length(note) BETWEEN 1 AND 2000),
  dispute_id bigint REFERENCES disputes (id),
  -- The action reviewed (the dispute's, else the message's strongest), for the Feedback.
  action_id text,
  reversals text[] NOT NULL DEFAULT '{}',
  published boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_message_idx ON reviews (message_id, created_at);
-- A decision is overturned once: a second click (or a second moderator) finds it done.
CREATE UNIQUE INDEX reviews_overturned_once ON reviews (message_id) WHERE outcome = 'overturned';
CREATE UNIQUE INDEX reviews_hold_once ON reviews (message_id)
  WHERE outcome IN ('hold_approved', 'hold_dismissed');
CREATE INDEX reviews_unpublished_idx ON reviews (id) WHERE NOT published;

-- The latest explanation of a message (moderation.explanations.v1), as its JSON document.
CREATE TABLE explanations (
  message_id text PRIMARY KEY,
  document jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The verdict behind a decision, as the review page shows it (NULL for decisions made before
-- this migration).
ALTER TABLE decisions
  ADD COLUMN text text,
  ADD COLUMN p_toxic double precision,
  ADD COLUMN features jsonb,
  ADD COLUMN label_scores jsonb,
  ADD COLUMN reasons jsonb;
-- The review queue's sample of borderline decisions.
CREATE INDEX decisions_recent_idx ON decisions (platform, community, decided_at);
