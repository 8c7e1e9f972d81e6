"""Slack message events (the Events API's shapes) -> ChatMessage, and retry recognition."""

from __future__ import annotations

from fakes.slack_socket import TEAM_ID, edit_event, message_event

from ingest.adapters.slack import SeenEvents, to_chat_message


def test_a_plain_message() -> None:
    event = message_event("hello", channel="C1", user="U1", ts="1718474400.000100")
    message = to_chat_message(event, TEAM_ID)
    assert message is not None
    assert message.message_id == "C1:1718474400.000100"
    assert (message.platform, message.community, message.channel) == ("slack", TEAM_ID, "C1")
    assert message.user == "U1" and message.text == "hello" and not message.edited
    assert message.sent_at.timestamp() == 1718474400.0001
    assert message.key == f"slack:{TEAM_ID}:U1"


def test_thread_replies_point_at_their_parent() -> None:
    reply = message_event("yes", channel="C1", ts="2.000", thread_ts="1.000")
    assert to_chat_message(reply, TEAM_ID).reply_to == "C1:1.000"  # type: ignore[union-attr]
    parent = message_event("q?", channel="C1", ts="1.000", thread_ts="1.000")
    assert to_chat_message(parent, TEAM_ID).reply_to is None  # type: ignore[union-attr]


def test_an_edit_is_a_new_event_for_the_same_message() -> None:
    message = to_chat_message(edit_event("C1", "1.000", "fixed typo"), TEAM_ID)
    assert message is not None
    assert message.edited and message.message_id == "C1:1.000" and message.text == "fixed typo"


def test_files_become_attachments() -> None:
    event = message_event(
        "look",
        subtype="file_share",
        files=[
            {"name": "a.png", "mimetype": "image/png", "url_private": "https://files/a.png"},
            {"name": "hidden", "file_access": "check_file_info"},
        ],
    )
    message = to_chat_message(event, TEAM_ID)
    assert message is not None
    assert [(a.url, a.content_type, a.filename) for a in message.attachments] == [
        ("https://files/a.png", "image/png", "a.png")
    ]


def test_what_is_not_chat_is_skipped() -> None:
    unfurl = edit_event("C1", "1.000", "same text")
    del unfurl["message"]["edited"]
    bot = dict(message_event("beep"), subtype="bot_message", bot_id="B1")
    del bot["user"]
    skipped = [
        unfurl,
        bot,
        dict(message_event("joined"), subtype="channel_join"),
        {"type": "message", "subtype": "message_deleted", "channel": "C1", "ts": "1.0"},
    ]
    assert [to_chat_message(e, TEAM_ID) for e in skipped] == [None] * 4


def test_the_workspace_comes_from_the_envelope_when_the_event_lacks_it() -> None:
    event = message_event("hi")
    del event["team"]
    assert to_chat_message(event, "T9").community == "T9"  # type: ignore[union-attr]


def test_seen_events_recognise_retries_and_forget_old_ones() -> None:
    seen = SeenEvents(max_size=2)
    assert seen.claim("Ev1") and not seen.claim("Ev1")
    assert seen.claim("Ev2") and seen.claim("Ev3")
    assert seen.claim("Ev1"), "the oldest is forgotten past max_size"
