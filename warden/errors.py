"""The one exception tree of ChatWarden.

WardenError                      base; never raised itself
 +-- ConfigError                 bad settings; fatal at start-up (not retriable)
 +-- PayloadError                an event that fails its schema; goes to the dead-letter
 |                               topic (not retriable: the same bytes fail again)
 +-- StackError                  a local server failed to install or start (not retriable)
 +-- TransientError              a dependency is briefly unavailable (retriable)
 +-- ActionError                 a platform action failed
      +-- RetriableActionError   rate limit, 5xx, timeout (retriable with backoff)
      +-- PermanentActionError   missing permission, unknown message (not retriable)
"""

from __future__ import annotations


class WardenError(Exception):
    """Base of every error ChatWarden raises on purpose."""

    retriable: bool = False


class ConfigError(WardenError):
    """Settings failed validation; the message names each bad variable."""


class PayloadError(WardenError):
    """An event's bytes do not decode into its topic's schema."""


class StackError(WardenError):
    """A local stack server could not be installed, started or reached."""


class TransientError(WardenError):
    """A dependency (broker, Redis, Postgres) is briefly unavailable."""

    retriable = True


class ActionError(WardenError):
    """A platform action did not happen."""


class RetriableActionError(ActionError):
    """Worth another try after a wait: rate limits, server errors, time-outs."""

    retriable = True


class PermanentActionError(ActionError):
    """Trying again fails again: missing permissions, unknown message or member."""
