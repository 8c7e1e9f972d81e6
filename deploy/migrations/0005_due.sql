-- Actions that wait for their time (issue #12): a raid mode's RAID_MODE_OFF is written with the
-- raid mode, pending, and runs once `due_at` has passed (the actioner that owns the raid's
-- partition looks for due entries every `due_check_s`). `restore` is what an executor said to
-- put back when the action is undone (raid mode: the chat settings it found before tightening
-- them); the undo entry reads it from the entry it `reverses` when it comes due.
ALTER TABLE action_ledger ADD COLUMN due_at timestamptz;
ALTER TABLE action_ledger ADD COLUMN restore jsonb;
CREATE INDEX action_ledger_due_idx ON action_ledger (source_topic, source_partition, due_at)
  WHERE state = 'pending' AND due_at IS NOT NULL;
