"""The review queue in a real headless browser (Debian's chromium and chromedriver, through
selenium): sign in, open a dispute, overturn it with a note, see the result.

Its screenshots go to the test's temporary folder, or to ``--screenshots DIR`` (the README's in
docs/ are made with ``--screenshots docs``), so that a test run leaves the checkout as it was.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from kit import Service
from reviewkit import PASSWORD, add_moderator, review_env, seed_timeout, sign_in, snowflake, started

from actioners.chatlog import ChatLog
from core.net import free_port
from core.settings import Settings
from devkit.platforms.discord import DiscordServer
from schemas.events import (
    Explanation,
    Feedback,
    FeedbackKind,
    Platform,
    Severity,
    TokenWeight,
    Verdict,
)
from schemas.topics import EXPLANATIONS, FEEDBACK

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromedriver are not installed (`warden stack up` installs them)",
)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # we run as root in the test machines
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1500",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[DiscordServer]:
    fake = DiscordServer()
    await fake.start()
    yield fake
    await fake.close()


async def test_sign_in_open_a_dispute_and_overturn_it(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: DiscordServer,
    browser: object,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    shots: Path = request.config.getoption("--screenshots") or tmp_path
    guild, user = snowflake(), snowflake()
    name = f"alice_{uuid.uuid4().hex[:6]}"
    await add_moderator(migrated, name, ("discord", guild))
    text = "nobody wants you here, clown"
    message_id = await seed_timeout(settings, discord, guild, user, text)
    # Another user's timeout nobody disputed: the queue's sample of high-impact decisions.
    await seed_timeout(settings, discord, guild, snowflake(), "go back to your cave")
    env = review_env(settings, discord, free_port())
    base = f"http://127.0.0.1:{env['WARDEN_REVIEW__PORT']}"
    review = service_factory("review", **env)

    # The user's earlier lines (as the actioner keeps them), the explanation and the dispute.
    lines = ["gg everyone", "that last round was rough", text]
    chatlog = ChatLog(settings)
    now = datetime.now(UTC)
    await chatlog.record(
        [
            Verdict(
                message_id=message_id if line == text else snowflake(),
                platform=Platform.DISCORD,
                community=guild,
                channel="100",
                user=user,
                text=line,
                p_toxic=0.9 if line == text else 0.05,
                severity=Severity.HIGH if line == text else Severity.LOW,
                flagged=line == text,
                model_version="test-model-1",
                sent_at=now,
                received_at=now,
                scored_at=now,
            )
            for line in lines
        ]
    )
    await chatlog.close()
    suffix = settings.kafka.topic_suffix
    explanation = Explanation(
        message_id=message_id,
        model_version="test-model-1",
        p_toxic=0.91,
        weights=[
            TokenWeight(token="clown", weight=0.41),
            TokenWeight(token="nobody", weight=0.18),
            TokenWeight(token="wants", weight=0.05),
            TokenWeight(token="here", weight=-0.07),
        ],
        created_at=now,
        samples=500,
        fit=0.83,
    )
    await producer.send_and_wait(
        EXPLANATIONS.name_for(suffix), explanation.to_json_bytes(), key=message_id.encode()
    )
    complaint = Feedback(
        feedback_id=f"{guild}-1",
        kind=FeedbackKind.DISPUTE,
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        user=user,
        reason="I was quoting the streamer",
        created_at=now,
        source="discord",
    )
    await producer.send_and_wait(
        FEEDBACK.name_for(suffix), complaint.to_json_bytes(), key=message_id.encode()
    )
    await started(review, base)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await sign_in(client, name)
        for _ in range(100):
            queue = (await client.get("/api/queue")).json()
            if queue["disputes"]:
                break
            await asyncio.sleep(0.2)
        assert queue["disputes"], "the dispute did not reach the queue"

    def drive() -> None:
        wait = WebDriverWait(browser, 15)
        browser.get(f"{base}/")
        assert "/login" in browser.current_url  # not signed in: sent to sign in
        browser.find_element(By.ID, "name").send_keys(name)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "sign-in").click()
        wait.until(ec.presence_of_element_located((By.ID, "disputes")))
        assert "go back to your cave" in browser.find_element(By.ID, "sample").text
        shots.mkdir(parents=True, exist_ok=True)
        browser.set_window_size(1280, 1000)
        browser.save_screenshot(str(shots / "review-queue.png"))
        browser.set_window_size(1280, 1500)
        browser.find_element(By.CSS_SELECTOR, "#disputes a").click()
        wait.until(ec.presence_of_element_located((By.ID, "overturn-note")))
        page = browser.page_source
        assert "I was quoting the streamer" in page and "that last round was rough" in page
        assert "rgba(220, 38, 38" in page  # "clown" highlighted as pushing the score up
        browser.find_element(By.ID, "overturn-note").send_keys("quoting the streamer, not abuse")
        browser.find_element(By.ID, "overturn").click()
        wait.until(ec.presence_of_element_located((By.ID, "overturned")))
        shown = browser.find_element(By.TAG_NAME, "main").text
        assert "Overturned" in shown and "quoting the streamer, not abuse" in shown
        assert "dispute overturned" in shown
        browser.save_screenshot(str(shots / "review-message.png"))

    await asyncio.to_thread(drive)
    for _ in range(50):
        if (guild, user) not in discord.timeouts:
            break
        await asyncio.sleep(0.1)
    assert discord.effect_counts()[("untimeout", f"{guild}:{user}")] == 1
    assert shutil.which(str(CHROMIUM))
