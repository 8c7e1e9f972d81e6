"""The one exception tree of ChatWarden, with the exit code each kind ends a command with.

WardenError                      base; never raised itself                          exit 1
 +-- ConfigError                 bad settings; fatal at start-up (not retriable)      exit 2
 +-- PayloadError                an event that fails its schema; goes to the dead-     exit 4
 |                               letter topic (not retriable: the same bytes fail again)
 +-- StackError                  a local server failed to install or start            exit 3
 +-- TransientError              a dependency is briefly unavailable (retriable)       exit 5
 +-- ActionError                 a platform action failed                              exit 6
 |    +-- RetriableActionError   rate limit, 5xx, timeout (retriable with backoff)
 |    +-- PermanentActionError   missing permission, unknown message (not retriable)
 +-- AttachmentError             an attachment that cannot be scored; ``reason`` is a  exit 4
      |                          short code (metrics, dead letters)
      +-- ImageRejected          bytes that are no safe image of an accepted format
      |                          (not retriable: the same bytes fail again)
      +-- FetchRejected          a URL or response the fetch rules refuse (not retriable)
      +-- FetchFailed            time-out, connection error, 5xx (retriable)           exit 5

``core.commandline.fail`` turns any of them into one line on stderr and that exit code."""

from __future__ import annotations


class WardenError(Exception):
    """Base of every error ChatWarden raises on purpose."""

    retriable: bool = False
    exit_code: int = 1


class ConfigError(WardenError):
    """Settings failed validation; the message names each bad variable."""

    exit_code = 2


class PayloadError(WardenError):
    """An event's bytes do not decode into its topic's schema."""

    exit_code = 4


class StackError(WardenError):
    """A local stack server could not be installed, started or reached."""

    exit_code = 3


class TransientError(WardenError):
    """A dependency (broker, Redis, Postgres) is briefly unavailable."""

    retriable = True
    exit_code = 5


class ActionError(WardenError):
    """A platform action did not happen."""

    exit_code = 6


class RetriableActionError(ActionError):
    """Worth another try after a wait: rate limits, server errors, time-outs."""

    retriable = True


class PermanentActionError(ActionError):
    """Trying again fails again: missing permissions, unknown message or member."""


class AttachmentError(WardenError):
    """An attachment (a message's image) that cannot be scored.

    ``reason`` is a short machine-readable code (``too_large``, ``private_address``...) for
    metrics labels and dead letters; the message is one line for people. Pickles with both, so
    an error raised in a worker process arrives whole."""

    exit_code = 4
    kind = "attachment error"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{self.kind} ({reason}): {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[AttachmentError], tuple[str, str]]:
        return type(self), (self.reason, self.detail)


class ImageRejected(AttachmentError):
    """Bytes that are not a safe image of an accepted format (``imagery.decoding``)."""

    kind = "image rejected"


class FetchRejected(AttachmentError):
    """A URL, redirect or response the attachment fetch rules refuse (``scorers.images.fetch``):
    fetching it again is refused again."""

    kind = "fetch refused"


class FetchFailed(AttachmentError):
    """The attachment's host did not answer in time, dropped the connection or answered 5xx:
    worth another try later."""

    retriable = True
    exit_code = 5
    kind = "fetch failed"
