"""``warden bench``: the pipeline's speed, measured against the model alone and the per-message
HTTP design, on the local stack, in one run."""
