-- The model registry (`warden models`): every model directory with its training data, its
-- metrics on the reserved sets and its lineage, and every promotion, refusal and rollback.
-- `registry` names a deployment (WARDEN_MODEL__REGISTRY), so several may share one database.
CREATE TABLE models (
  registry text NOT NULL,
  version text NOT NULL,
  path text NOT NULL,
  kind text NOT NULL,
  parent text,
  status text NOT NULL DEFAULT 'candidate'
    CHECK (status IN ('candidate', 'active', 'retired')),
  trained_at timestamptz,
  registered_at timestamptz NOT NULL DEFAULT now(),
  -- model.json's training section (rows per source, data sha256) and its reserved-set metrics.
  data jsonb NOT NULL DEFAULT '{}',
  metrics jsonb NOT NULL DEFAULT '{}',
  card_sha256 text,
  PRIMARY KEY (registry, version)
);
-- At most one active model per registry.
CREATE UNIQUE INDEX models_one_active ON models (registry) WHERE status = 'active';

CREATE TABLE model_events (
  id bigserial PRIMARY KEY,
  registry text NOT NULL,
  version text NOT NULL,
  previous text,
  event text NOT NULL
    CHECK (event IN ('registered', 'promoted', 'forced', 'refused', 'rolled_back')),
  reason text NOT NULL DEFAULT '',
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (registry, version) REFERENCES models (registry, version)
);
CREATE INDEX model_events_registry_idx ON model_events (registry, id);

-- Users whose data was deleted (`warden models forget-user`): a retrain leaves out their
-- messages and the reviews of them, whenever those were made.
CREATE TABLE data_deletions (
  platform text NOT NULL,
  community text NOT NULL,
  user_id text NOT NULL,
  requested_by text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (platform, community, user_id)
);
