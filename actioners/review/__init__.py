"""The moderators' review queue (``warden review``): a small server-rendered web app.

- ``accounts``: moderator accounts (scrypt password hashes) and the communities granted to them;
- ``store``: what the pages read (the queue, one message's page), always filtered by the
  moderator's communities;
- ``intake``: the feedback (disputes) and explanations topics into Postgres;
- ``resolutions``: uphold, overturn (reversals through the actioner's ledger, exactly once),
  approve or dismiss a hold;
- ``web``: the FastAPI app (sign-in, sessions, CSRF, pages), started with its consumers and
  resumed reversals in its lifespan.
"""
