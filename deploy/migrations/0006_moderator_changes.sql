-- Who changed a moderator account, and how (`warden moderators add|grant|revoke`, a password or
-- a disabled account): the review queue's access is audited like its decisions.
CREATE TABLE moderator_changes (
  id bigserial PRIMARY KEY,
  moderator text NOT NULL,
  change text NOT NULL CHECK (change IN ('added', 'granted', 'revoked', 'password', 'disabled', 'enabled')),
  communities text[] NOT NULL DEFAULT '{}',
  changed_by text NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderator_changes_name_idx ON moderator_changes (moderator, changed_at);
