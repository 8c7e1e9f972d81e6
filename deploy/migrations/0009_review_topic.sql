-- The feedback topic a review is published on (its review service's, which names the
-- environment by topic suffix): a service resuming at start publishes only its own
-- unpublished reviews, never those of another environment sharing the database. Null for
-- reviews recorded before this migration (any service may publish those, as before).
ALTER TABLE reviews ADD COLUMN feedback_topic text;
