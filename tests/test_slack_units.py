"""The Slack adapter's pure parts: text both ways, blocks, settings, error mapping, plugin setup."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app import App
from bot.clock import FakeClock
from bot.config_file import ConfigFile
from bot.model import Address, Button
from bot.settings import CoreSettings
from channels import slack
from channels.base import PermanentSendError, RetryableSendError
from channels.slack import SlackChannel, SlackSettings
from channels.slack_text import MAX_SECTION, blocks_for, escape_mrkdwn, inbound_text, split_text


def test_inbound_text_drops_the_bot_mention_and_unwraps_links() -> None:
    assert inbound_text("<@UBOT> how is <@U123|maria> doing?", "UBOT") == "how is maria doing?"
    assert inbound_text("see <https://x.example/a?b=1&amp;c=2> &amp; <mailto:a@b.c|a@b.c>") == (
        "see https://x.example/a?b=1&c=2 & a@b.c"
    )
    assert inbound_text('alias "Ajay Adedeji" = "Adedeji Oyeniran"') == 'alias "Ajay Adedeji" = "Adedeji Oyeniran"'
    assert inbound_text("log Maria\nkept the\nlines") == "log Maria\nkept the\nlines"
    assert inbound_text("alias “Ajay Adedeji” = “Adedeji Oyeniran”") == 'alias "Ajay Adedeji" = "Adedeji Oyeniran"'


def test_escape_keeps_links_and_mentions_written_on_purpose() -> None:
    assert escape_mrkdwn("CVR < 5% & sales > $100") == "CVR &lt; 5% &amp; sales &gt; $100"
    assert escape_mrkdwn("ask <@U123> or see <https://x.example|the sheet>") == (
        "ask <@U123> or see <https://x.example|the sheet>"
    )
    assert escape_mrkdwn("a <b> c") == "a &lt;b&gt; c"


def test_split_text_prefers_line_breaks_and_never_cuts_an_emoji_sequence() -> None:
    body = "\n".join(f"line {i}" for i in range(100))
    parts = split_text(body, 100)
    assert all(len(p) <= 100 for p in parts) and "\n".join(parts) == body
    family = "👨\u200d👩\u200d👧" * 50
    parts = split_text(family, 37)
    assert "".join(parts) == family and all(not p.startswith("\u200d") for p in parts)


def test_blocks_for_buttons_and_long_text() -> None:
    buttons = [Button(f"Option {i} " + "x" * 80, f"pick:{i}") for i in range(30)]
    blocks = blocks_for("y" * (MAX_SECTION + 10), buttons)
    sections = [b for b in blocks if b["type"] == "section"]
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(sections) == 2 and all(len(s["text"]["text"]) <= MAX_SECTION for s in sections)
    assert [len(a["elements"]) for a in actions] == [25, 5]
    labels = [e["text"]["text"] for a in actions for e in a["elements"]]
    assert all(len(label) <= 75 for label in labels)
    ids = [e["action_id"] for a in actions for e in a["elements"]]
    assert len(set(ids)) == 30


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, None),
        ({"slack_bot_token": "xoxb"}, None),
        ({"slack_bot_token": "xoxb", "slack_app_token": "xapp"}, "socket"),
        ({"slack_bot_token": "xoxb", "slack_signing_secret": "s"}, "http"),
        ({"slack_bot_token": "xoxb", "slack_app_token": "xapp", "slack_signing_secret": "s"}, "socket"),
        (
            {"slack_bot_token": "xoxb", "slack_app_token": "xapp", "slack_signing_secret": "s", "slack_mode": "http"},
            "http",
        ),
        ({"slack_bot_token": "xoxb", "slack_mode": "http"}, None),
    ],
)
def test_mode_follows_the_tokens(env: dict[str, str], mode: str | None) -> None:
    assert SlackSettings(_env_file=None, **env).resolved_mode() == mode  # type: ignore[call-arg]


def test_api_url_gets_its_trailing_slash() -> None:
    s = SlackSettings(_env_file=None, slack_api_url="http://127.0.0.1:9/api")  # type: ignore[call-arg]
    assert s.api_base() == "http://127.0.0.1:9/api/"


def _app() -> App:
    return App(CoreSettings(_env_file=None, database_url=":memory:"), clock=FakeClock(), config=ConfigFile({}))  # type: ignore[call-arg]


def test_setup_without_tokens_adds_no_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HUDDLE_SLACK_BOT_TOKEN", "HUDDLE_SLACK_APP_TOKEN", "HUDDLE_SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(key, raising=False)
    app = _app()
    slack.setup(app)
    assert "slack" not in app.channels


def test_setup_in_http_mode_mounts_the_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUDDLE_SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("HUDDLE_SLACK_SIGNING_SECRET", "secret")
    monkeypatch.delenv("HUDDLE_SLACK_APP_TOKEN", raising=False)
    app = _app()
    slack.setup(app)
    app.build_channels()  # adapters are built when the bot starts, not for every command
    assert isinstance(app.channels["slack"], SlackChannel)
    assert any(r.resource and r.resource.canonical == "/slack/events" for r in app.http.web.router.routes())
    assert app.channels["slack"].policy.pacing.per_recipient_rate == 1.0
    assert "xoxb-1" not in repr(SlackSettings())


def _error(error: str, status: int = 200, headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="x",
        req_args={},  # type: ignore[arg-type]
        data={"ok": False, "error": error},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("failed", response)


@pytest.mark.parametrize(
    ("exc", "kind", "unreachable"),
    [
        (_error("ratelimited", 429, {"retry-after": "12"}), RetryableSendError, None),
        (_error("channel_not_found"), PermanentSendError, True),
        (_error("is_archived"), PermanentSendError, True),
        (_error("invalid_auth"), RetryableSendError, None),
        (_error("internal_error", 500), RetryableSendError, None),
        (_error("msg_too_long"), PermanentSendError, False),
        (_error("invalid_blocks"), PermanentSendError, False),
    ],
)
def test_errors_map_to_what_the_outbox_should_do(exc: SlackApiError, kind: type, unreachable: bool | None) -> None:
    settings = SlackSettings(_env_file=None, slack_bot_token="xoxb", slack_app_token="xapp")  # type: ignore[call-arg]
    channel = SlackChannel(settings, FakeClock())
    channel.dm_channels["U1"] = "D1"
    result = channel._classify(exc, Address("slack", "U1"))
    assert isinstance(result, kind)
    if isinstance(result, RetryableSendError) and exc.response.status_code == 429:
        assert result.retry_after == 12.0
    if isinstance(result, PermanentSendError):
        assert result.unreachable is unreachable
        assert ("U1" in channel.dm_channels) is (not unreachable)
