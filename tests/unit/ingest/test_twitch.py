"""Twitch IRC lines (as Twitch documents and sends them) -> ChatMessage."""

from __future__ import annotations

import pytest

from core.twitch_irc import badge_roles, parse_line, unescape_tag
from ingest.adapters.twitch import to_chat_message

# Twitch's own example of a PRIVMSG with tags (dev.twitch.tv, "IRC tags reference").
DOCUMENTED = (
    "@badge-info=;badges=turbo/1;color=#0D4200;display-name=ronni;emotes=25:0-4,12-16/1902:6-10;"
    "id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;room-id=1337;subscriber=0;"
    "tmi-sent-ts=1507246572675;turbo=1;user-id=1337;user-type=global_mod "
    ":ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa"
)


def test_the_documented_privmsg() -> None:
    line = parse_line(DOCUMENTED)
    assert line.command == "PRIVMSG" and line.params == ["#ronni", "Kappa Keepo Kappa"]
    assert line.nick == "ronni"
    message = to_chat_message(line)
    assert message.message_id == "b34ccfc7-4977-403a-8a94-33c6bac34fb8"
    assert message.platform == "twitch"
    assert (message.community, message.channel, message.user) == ("1337", "#ronni", "1337")
    assert message.user_name == "ronni" and message.user_roles == ["turbo"]
    assert message.text == "Kappa Keepo Kappa"
    assert message.sent_at.timestamp() == pytest.approx(1507246572.675)
    assert [(a.filename, a.url.split("/")[-4]) for a in message.attachments] == [
        ("Kappa", "25"),
        ("Keepo", "1902"),
    ]
    assert message.key == "twitch:1337:1337"


def test_reply_badges_mod_flag_and_escaped_tags() -> None:
    raw = (
        "@badges=broadcaster/1,subscriber/3012;display-name=Big\\sStreamer;id=x1;mod=0;"
        "reply-parent-msg-id=parent-1;reply-parent-display-name=A\\:B;room-id=9;"
        "tmi-sent-ts=1700000000000;user-id=9 :big!big@big.tmi.twitch.tv PRIVMSG #big :@a thanks"
    )
    line = parse_line(raw)
    assert line.tags["display-name"] == "Big Streamer"
    assert line.tags["reply-parent-display-name"] == "A;B"
    message = to_chat_message(line)
    assert message.reply_to == "parent-1"
    assert message.user_roles == ["broadcaster", "subscriber"]
    mod = parse_line("@id=x2;mod=1;room-id=9;user-id=5 :m!m@m.tmi.twitch.tv PRIVMSG #big :hi")
    assert to_chat_message(mod).user_roles == ["moderator"]


def test_me_actions_lose_their_ctcp_framing() -> None:
    line = parse_line("@id=a;room-id=1;user-id=2 :u!u@u PRIVMSG #c :\x01ACTION dances\x01")
    assert to_chat_message(line).text == "dances"


def test_lines_without_tags_and_server_commands() -> None:
    assert parse_line("PING :tmi.twitch.tv").params == ["tmi.twitch.tv"]
    assert parse_line(":tmi.twitch.tv RECONNECT").command == "RECONNECT"
    join = parse_line(":bot!bot@bot.tmi.twitch.tv JOIN #chan")
    assert (join.command, join.params, join.tags) == ("JOIN", ["#chan"], {})
    with pytest.raises(ValueError):
        parse_line("")


def test_a_privmsg_without_ids_is_not_a_chat_message() -> None:
    # Without the twitch.tv/tags capability there is no message or user id to act on.
    with pytest.raises(ValueError, match="id, user-id, room-id"):
        to_chat_message(parse_line(":u!u@u PRIVMSG #c :hello"))


def test_helpers() -> None:
    assert unescape_tag("a\\sb\\:c\\\\d\\n") == "a b;c\\d\n"
    assert badge_roles("") == []
    assert badge_roles("vip/1,moderator/1") == ["vip", "moderator"]
