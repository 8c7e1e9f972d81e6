"""The scorer's side of a promotion: load the pointed model, swap it in, or keep the old one."""

from __future__ import annotations

from typing import Any

from core import metrics
from core.errors import ConfigError
from core.model_pointer import ActiveModel, pointer_key
from scorers.model_follow import ModelFollower


class Pointer:
    """The Redis pointer, as redis.asyncio answers GET."""

    def __init__(self) -> None:
        self.value: bytes | None = None

    async def get(self, key: str) -> bytes | None:
        assert key == pointer_key("r1")
        return self.value

    def point(self, version: str, path: str) -> None:
        self.value = ActiveModel(version, path, "2026-12-01T00:00:00Z").to_json().encode()


class Model:
    def __init__(self, version: str) -> None:
        self.version = version


def following(pointer: Pointer, load: Any, install: Any) -> ModelFollower:
    """A follower of registry ``r1`` running model ``v1``."""
    return ModelFollower(
        pointer,  # type: ignore[arg-type]
        "r1",
        "v1",
        load=load,
        install=install,
        poll_s=1,
        service="test",
    )


def swaps(result: str) -> float:
    value: float = metrics.MODEL_SWAPS.labels("test", result)._value.get()
    return value


async def test_a_promotion_is_loaded_and_installed_once() -> None:
    pointer = Pointer()
    installed: list[Any] = []
    loads: list[str] = []

    def load(active: ActiveModel) -> Any:
        loads.append(active.path)
        return Model(active.version)

    follower = following(pointer, load, installed.append)
    assert not await follower.check()  # no pointer yet: nothing to do
    pointer.point("v1", "models/v1")
    assert not await follower.check()  # the model it runs
    before = swaps("swapped")
    pointer.point("v2", "/models/v2")
    assert await follower.check()
    assert [m.version for m in installed] == ["v2"] and loads == ["/models/v2"]
    assert follower.version == "v2" and swaps("swapped") == before + 1
    assert not await follower.check()  # already running v2


async def test_a_model_that_cannot_load_is_counted_once_and_the_old_one_kept() -> None:
    pointer = Pointer()
    installed: list[Any] = []
    loads: list[str] = []

    def load(active: ActiveModel) -> Any:
        loads.append(active.version)
        if active.version == "broken":
            raise ConfigError("/gone: no such directory")
        if active.version == "liar":
            return Model("someone-else")
        return Model(active.version)

    follower = following(pointer, load, installed.append)
    failed = swaps("failed")
    pointer.point("broken", "/gone")
    assert not await follower.check() and not await follower.check()
    assert loads == ["broken"] and swaps("failed") == failed + 1  # not retried in a loop
    pointer.point("liar", "/models/liar")  # a directory holding another version
    assert not await follower.check()
    assert follower.version == "v1" and installed == []
    pointer.point("v3", "/models/v3")  # a later promotion is picked up
    assert await follower.check() and follower.version == "v3"


async def test_an_unreadable_pointer_keeps_the_model() -> None:
    pointer = Pointer()
    pointer.value = b"not json"
    follower = following(pointer, lambda active: Model(active.version), lambda model: None)
    assert not await follower.check()
