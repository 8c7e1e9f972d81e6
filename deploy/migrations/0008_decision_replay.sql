-- Replayable decisions (issue #14, `warden replay-decision MESSAGE_ID`): what a decision was made
-- from, kept with it, so that it can be made again and compared.

-- The verdict as the actioner read it (schemas.events.Verdict as JSON: text, feature snapshot,
-- labels, label scores, model and policy versions, and `scoring`: the encoder back end,
-- thresholds and flag severity the model scored with). It holds nothing this row does not
-- already show (`text`, `features`, `label_scores`, `reasons`) but the user's roles, the
-- timestamps and `scoring`, and it lives and goes with the row: whatever removes or redacts a
-- decision's text must clear this column too. Null for decisions recorded before this
-- migration and for raid decisions (a raid has no verdict).
ALTER TABLE decisions ADD COLUMN verdict jsonb;

-- The user's active strike points just before the decision (`strikes_active` is after it):
-- real ones, and shadow ones (which count only towards shadow decisions). Null before this
-- migration.
ALTER TABLE decisions ADD COLUMN strikes_before integer;
ALTER TABLE decisions ADD COLUMN shadow_strikes_before integer;
