"""Hot swap: the scorer follows the model registry's active model without a restart.

``warden models promote`` (and ``rollback``) writes the registry's pointer in Redis
(``core.model_pointer``). Every ``WARDEN_MODEL__POLL_S`` the scorer reads it; when it names
another model, the model is loaded in a thread of its own while the current one keeps scoring,
then :meth:`scorers.stages.Stages.swap` hands it to the next batch. The batch in the model
finishes with the model it started with, offsets are untouched, and every verdict's
``model_version`` names the model that decided it: nothing is lost or scored twice.

A pointer to a model that cannot be loaded (a missing directory, a different version inside) is
logged and counted once, and the scorer keeps its model until the pointer changes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core import metrics
from core.errors import WardenError
from core.model_pointer import ActiveModel, read_active

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from toxicity.base import TextScorer

logger = logging.getLogger(__name__)

Loader = Callable[[ActiveModel], "TextScorer"]


class ModelFollower:
    """Polls the pointer and swaps a newly promoted model in through ``install``."""

    def __init__(
        self,
        client: aioredis.Redis,
        registry: str,
        version: str,
        *,
        load: Loader,
        install: Callable[[TextScorer], None],
        poll_s: float,
        service: str,
    ) -> None:
        self.client = client
        self.registry = registry
        self.version = version
        self.load = load
        self.install = install
        self.poll_s = poll_s
        self.service = service
        self._refused: ActiveModel | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.check()

    async def check(self) -> bool:
        """One look at the pointer; True when another model was swapped in."""
        try:
            pointer = await read_active(self.client, self.registry)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("cannot read the active-model pointer: %s", exc)
            return False
        if pointer is None or pointer.version == self.version or pointer == self._refused:
            return False
        logger.info("model %s promoted: loading %s", pointer.version, pointer.path)
        try:
            model = await asyncio.to_thread(self.load, pointer)
            if model.version != pointer.version:
                raise WardenError(
                    f"{pointer.path} holds model {model.version}, not {pointer.version}"
                )
        except (WardenError, OSError, ValueError) as exc:
            self._refused = pointer
            metrics.MODEL_SWAPS.labels(self.service, "failed").inc()
            logger.error("keeping model %s: cannot load %s: %s", self.version, pointer.path, exc)
            return False
        self.install(model)
        previous, self.version = self.version, model.version
        metrics.MODEL_SWAPS.labels(self.service, "swapped").inc()
        metrics.MODEL_INFO.labels(self.service, previous).set(0)
        metrics.MODEL_INFO.labels(self.service, model.version).set(1)
        logger.info("model %s replaced %s between batches", model.version, previous)
        return True
