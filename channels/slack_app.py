"""The Slack adapter: slack-bolt in Socket Mode (default) or HTTP mode, slack-sdk for the Web API.

Socket Mode is the default (no public URL; `HUDDLE_SLACK_BOT_TOKEN` + `HUDDLE_SLACK_APP_TOKEN`),
with a watchdog for a socket that dies silently. HTTP mode (`HUDDLE_SLACK_SIGNING_SECRET`) mounts
`POST /slack/events` on the shared HTTP server and checks Slack's signature over a 5-minute window.

Every request is acknowledged only after `on_inbound` returned, i.e. after the message is
committed (Bolt's `process_before_response`): a failure leaves it unacknowledged and Slack
redelivers it. Redeliveries and the two events Slack sends for one message (`message.im` and
`app_mention`) carry the same `CHANNEL:ts` provider id, so the core stores them once.

Addresses: the person is `Address("slack", USER_ID)`. An outbound to a user id (`U…`/`W…`) goes
to the DM opened with `conversations.open` (cached); any other id (`C…`, `G…`, `D…`) is posted to
directly. `thread` is `CHANNEL:THREAD_TS` (answer in that thread of that channel — how a mention
in a channel is answered) or a bare `THREAD_TS` (a thread in the recipient's DM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.model import Address, Inbound, InboundFile, Outbound
from channels.base import (
    ChannelHealth,
    ChannelPolicy,
    DeliveryHandler,
    InboundHandler,
    PermanentSendError,
    RetryableSendError,
    SendResult,
)
from channels.slack_files import FileFetcher
from channels.slack_settings import SlackPolicy, SlackSettings
from channels.slack_text import MAX_TEXT, blocks_for, inbound_text, split_text
from channels.slack_watchdog import SocketWatchdog

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

UNREACHABLE = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "account_inactive",
        "is_archived",
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
    }
)
"""The address is dead for us: the outbox marks it unreachable and stops sending to it."""
TRANSIENT = frozenset(
    {
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
    }
)
"""Worth another try later (auth errors too: an operator can fix the token without losing messages)."""
MESSAGE_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
"""Message events that are something a person said; edits, joins and bot posts are not."""


class _EpochClock:
    """slack-sdk's SignatureVerifier wants `now()` in epoch seconds; ours gives datetimes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()


class SlackChannel:
    name = "slack"

    def __init__(self, settings: SlackSettings, clock: Clock, policy: ChannelPolicy | None = None) -> None:
        mode = settings.resolved_mode()
        if mode is None or settings.slack_bot_token is None:
            raise ValueError("Slack needs HUDDLE_SLACK_BOT_TOKEN and an app token (socket) or a signing secret (http)")
        self.settings = settings
        self.clock = clock
        self.mode = mode
        self.policy: ChannelPolicy = policy or SlackPolicy(settings)
        self.token = settings.slack_bot_token.get_secret_value()
        self.verifier = (
            SignatureVerifier(settings.slack_signing_secret.get_secret_value(), clock=_EpochClock(clock))
            if settings.slack_signing_secret
            else None
        )
        self.session: aiohttp.ClientSession | None = None
        self.client: AsyncWebClient | None = None
        self.bolt: AsyncApp | None = None
        self.socket: AsyncSocketModeHandler | None = None
        self.watchdog: SocketWatchdog | None = None
        self.fetcher: FileFetcher | None = None
        self.bot_user_id: str | None = None
        self.dm_channels: dict[str, str] = {}
        self.accepting = False
        self.last_event_at: datetime | None = None
        """When the last event from Slack was stored (any message, command or button)."""
        self._on_inbound: InboundHandler | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        self._on_inbound = on_inbound
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        base = self.settings.api_base()
        kwargs: dict[str, Any] = {"base_url": base} if base else {}
        self.client = AsyncWebClient(token=self.token, session=self.session, timeout=30, **kwargs)
        api_host = urlsplit(base).hostname if base else None
        self.fetcher = FileFetcher(self.session, self.token, api_host, self.settings.slack_max_file_bytes)
        self.bolt = self._build_bolt(self.client)
        try:
            await self._identify()
        except BaseException:
            await self.session.close()
            raise
        self.accepting = True
        if self.mode == "socket":
            await self._connect_socket()
        log.info("slack started mode=%s bot_user=%s", self.mode, self.bot_user_id)

    async def _identify(self) -> None:
        """auth.test: learn the bot's user id (to strip its mention) and fail loudly on a bad token."""
        assert self.client is not None
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            error = _error_code(exc)
            if error in {"invalid_auth", "not_authed", "token_revoked", "account_inactive"}:
                raise RuntimeError(f"Slack rejected HUDDLE_SLACK_BOT_TOKEN ({error})") from exc
            log.warning("slack auth.test failed error=%s; carrying on", error)
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack unreachable at start (%s); carrying on, the socket will retry", type(exc).__name__)
            return
        self.bot_user_id = auth.get("user_id")

    async def _connect_socket(self) -> None:
        assert self.bolt is not None and self.client is not None and self.settings.slack_app_token is not None
        self.socket = AsyncSocketModeHandler(
            self.bolt,
            self.settings.slack_app_token.get_secret_value(),
            logger=logging.getLogger("slack_sdk.socket_mode"),
            web_client=self.client,
            ping_interval=self.settings.slack_ping_interval,
        )
        self.watchdog = SocketWatchdog(
            self.socket.client,
            self.clock,
            interval=self.settings.slack_watchdog_interval,
            timeout=self.settings.slack_watchdog_timeout,
        )
        self.socket.client.on_message_listeners.append(self.watchdog.on_message)
        try:
            await asyncio.wait_for(self.socket.connect_async(), timeout=self.settings.slack_connect_timeout)
        except TimeoutError:
            log.warning(
                "slack socket not connected after %.0fs; the watchdog keeps trying", self.settings.slack_connect_timeout
            )
        self.watchdog.start()

    async def stop_receiving(self) -> None:
        """Stop taking events (graceful stop): unacknowledged ones are redelivered by Slack later."""
        self.accepting = False
        if self.watchdog is not None:
            await self.watchdog.stop()
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await self.socket.close_async()
            self.socket = None

    async def stop(self) -> None:
        await self.stop_receiving()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def healthy(self) -> bool:
        return self.health().up

    def health(self) -> ChannelHealth:
        """Socket Mode: up while the websocket is open and not silent past the watchdog's timeout.

        HTTP mode: up while accepting events (Slack calls us; there is no connection to watch).
        """

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        detail: dict[str, Any] = {"mode": self.mode, "bot_user": self.bot_user_id,
                                  "last_event_at": iso(self.last_event_at)}
        if not self.accepting:
            return ChannelHealth(False, {**detail, "connected": False, "error": "not receiving"})
        if self.mode == "http":
            return ChannelHealth(True, detail)
        session = self.socket.client.current_session if self.socket else None
        connected = session is not None and not session.closed
        up = connected
        if self.watchdog is not None:
            silent = self.watchdog.silent_for()
            detail.update(watchdog_silent_for=round(silent, 1), watchdog_timeout=self.watchdog.timeout,
                          reconnects=self.watchdog.reconnects)
            up = up and silent < self.watchdog.timeout
        return ChannelHealth(up, {**detail, "connected": connected})

    # -- inbound -----------------------------------------------------------------------------

    def _build_bolt(self, client: AsyncWebClient) -> AsyncApp:
        bolt = AsyncApp(
            client=client,
            name="huddle",
            logger=logging.getLogger("slack_bolt"),
            process_before_response=True,  # acknowledge only after the message is committed
            request_verification_enabled=False,  # HTTP mode verifies on our clock, before Bolt sees it
        )
        bolt.event("message")(self._on_message)
        bolt.event("app_mention")(self._on_mention)
        bolt.event(re.compile(".*"))(self._on_other_event)
        bolt.command(re.compile(".*"))(self._on_command)
        bolt.action(re.compile(".*"))(self._on_action)
        bolt.shortcut(re.compile(".*"))(self._ack_only)
        bolt.view(re.compile(".*"))(self._ack_only)
        return bolt

    async def _deliver(self, inbound: Inbound) -> None:
        if self._on_inbound is None:
            raise RuntimeError("slack channel not started")
        await self._on_inbound(inbound)
        self.last_event_at = self.clock.now()

    async def _on_message(self, event: dict[str, Any]) -> None:
        """A DM to the bot (message.im). Channel messages reach us only as mentions."""
        said = event.get("subtype") in MESSAGE_SUBTYPES and event.get("user") and not event.get("bot_id")
        if said and (event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")):
            await self._deliver(await self._message_inbound(event, in_channel=False))

    async def _on_mention(self, event: dict[str, Any]) -> None:
        if event.get("user") and not event.get("bot_id"):
            in_channel = not str(event.get("channel", "")).startswith("D")
            await self._deliver(await self._message_inbound(event, in_channel=in_channel))

    async def _on_other_event(self, event: dict[str, Any]) -> None:
        """Acknowledged and dropped (`file_shared` too: the message event carries the file)."""
        log.debug("slack event ignored type=%s", event.get("type"))

    async def _ack_only(self, ack: Any) -> None:
        await ack()

    async def _message_inbound(self, event: dict[str, Any], *, in_channel: bool) -> Inbound:
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        thread_ts = event.get("thread_ts")
        if in_channel:
            thread: str | None = f"{channel}:{thread_ts or ts}"
        else:
            thread = f"{channel}:{thread_ts}" if thread_ts else None
        files = [await self._fetch(meta) for meta in event.get("files") or [] if isinstance(meta, dict)]
        profile = event.get("user_profile") or {}
        return Inbound(
            address=Address("slack", str(event["user"])),
            text=inbound_text(str(event.get("text") or ""), self.bot_user_id),
            provider_id=f"{channel}:{ts}",
            received_at=self.clock.now(),
            files=files,
            thread=thread,
            display_name=profile.get("display_name") or profile.get("real_name") or None,
        )

    async def _fetch(self, meta: dict[str, Any]) -> InboundFile:
        assert self.fetcher is not None and self.client is not None
        if meta.get("file_access") == "check_file_info" or not meta.get("url_private_download"):
            try:
                meta = (await self.client.files_info(file=meta["id"]))["file"]
            except SlackApiError as exc:
                log.warning("slack files.info failed file_id=%s error=%s", meta.get("id"), _error_code(exc))
        return await self.fetcher.fetch(meta)

    async def _on_command(self, command: dict[str, Any], ack: Any) -> None:
        """`/huddle stale 5` → the command `stale 5`; any other slash command keeps its own name."""
        text = inbound_text(str(command.get("text") or ""))
        name = str(command.get("command") or "")
        if name and name != self.settings.slack_command:
            text = f"{name.lstrip('/')} {text}".strip()
        trigger = command.get("trigger_id") or uuid.uuid4().hex
        await self._deliver(
            Inbound(
                address=Address("slack", str(command["user_id"])),
                text=text or "help",
                provider_id=f"cmd:{trigger}",
                received_at=self.clock.now(),
                display_name=command.get("user_name"),
            )
        )
        if str(command.get("channel_id", "")).startswith("D"):
            await ack()
        else:
            await ack(text="Got it. I'll answer in our DM.")

    async def _on_action(self, body: dict[str, Any], ack: Any) -> None:
        """A Block Kit button press → `Inbound.callback_data` = the button's value."""
        action = (body.get("actions") or [{}])[0]
        user = body.get("user") or {}
        value = action.get("value") or (action.get("selected_option") or {}).get("value") or action.get("action_id")
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        thread_ts = container.get("thread_ts")
        await self._deliver(
            Inbound(
                address=Address("slack", str(user.get("id"))),
                text=str((action.get("text") or {}).get("text") or value or ""),
                provider_id=f"action:{body.get('trigger_id') or action.get('action_ts') or uuid.uuid4().hex}",
                received_at=self.clock.now(),
                thread=f"{channel}:{thread_ts}" if channel and thread_ts else None,
                callback_data=str(value) if value is not None else None,
                display_name=user.get("name") or user.get("username"),
            )
        )
        await ack()

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        """POST /slack/events: verify the signature on our clock, then hand the body to Bolt."""
        if self.verifier is None or self.bolt is None or not self.accepting:
            return web.json_response({"error": "slack is not accepting events right now"}, status=503)
        raw = await request.read()
        try:
            valid = self.verifier.is_valid(
                raw, request.headers.get("X-Slack-Request-Timestamp"), request.headers.get("X-Slack-Signature")
            )
        except ValueError:
            valid = False
        if not valid:
            log.warning("slack request with a bad or old signature refused remote=%s", request.remote)
            return web.json_response({"error": "invalid signature"}, status=401)
        bolt_request = AsyncBoltRequest(
            body=raw.decode("utf-8", errors="replace"),
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        response = await self.bolt.async_dispatch(bolt_request)
        content_type = (response.headers.get("content-type") or ["text/plain;charset=utf-8"])[0]
        body = (response.body or "").encode()
        return web.Response(status=response.status, body=body, headers={"Content-Type": content_type})

    async def simulate_inbound(self, address_id: str, text: str) -> None:
        """A message as if `address_id` (a Slack user id) had written it in a DM (console, demos)."""
        await self._deliver(Inbound(Address("slack", address_id), text, f"sim:{uuid.uuid4().hex}", self.clock.now()))

    # -- outbound ----------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        if self.client is None:
            raise RetryableSendError("slack channel not started")
        channel, thread_ts = await self._target(outbound)
        pieces = split_text(outbound.body, MAX_TEXT)  # already mrkdwn: the outbox rendered it
        ids: list[str] = []
        for i, piece in enumerate(pieces):
            kwargs: dict[str, Any] = {"channel": channel, "text": piece, "mrkdwn": True}
            if thread_ts:
                kwargs["thread_ts"] = thread_ts
            if outbound.buttons and i == len(pieces) - 1:
                kwargs["blocks"] = blocks_for(piece, outbound.buttons)
            resp = await self._call(outbound.address, self.client.chat_postMessage, **kwargs)
            ids.append(f"{resp.get('channel') or channel}:{resp.get('ts')}")
        return SendResult(ids, delivered=True)

    async def _target(self, outbound: Outbound) -> tuple[str, str | None]:
        thread = outbound.thread or None
        if thread and ":" in thread:
            channel, _, ts = thread.partition(":")
            return channel, ts or None
        ident = outbound.address.id
        if ident[:1] in ("U", "W"):
            return await self._dm_channel(outbound.address), thread
        return ident, thread

    async def _dm_channel(self, address: Address) -> str:
        cached = self.dm_channels.get(address.id)
        if cached:
            return cached
        assert self.client is not None
        resp = await self._call(address, self.client.conversations_open, users=address.id)
        channel = str((resp.get("channel") or {}).get("id") or "")
        if not channel:
            raise RetryableSendError("conversations.open returned no channel")
        self.dm_channels[address.id] = channel
        return channel

    async def _call(self, address: Address, method: Any, **kwargs: Any) -> Any:
        """One Web API call, its failure translated into what the outbox should do next."""
        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            raise self._classify(exc, address) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableSendError(f"slack unreachable: {type(exc).__name__}") from exc

    def _classify(self, exc: SlackApiError, address: Address) -> RetryableSendError | PermanentSendError:
        status = getattr(exc.response, "status_code", None)
        error = _error_code(exc)
        if status == 429 or error == "ratelimited":
            retry_after = _header(exc, "Retry-After")
            return RetryableSendError("slack rate limit", retry_after=float(retry_after) if retry_after else 1.0)
        if error in UNREACHABLE:
            self.dm_channels.pop(address.id, None)
            return PermanentSendError(f"slack: {error}", unreachable=True)
        if error in TRANSIENT or (isinstance(status, int) and status >= 500):
            if error in {"invalid_auth", "not_authed", "token_revoked", "token_expired"}:
                log.error("slack rejected the bot token (%s): check HUDDLE_SLACK_BOT_TOKEN", error)
            return RetryableSendError(f"slack: {error or status}")
        return PermanentSendError(f"slack: {error or status}")


def _error_code(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict):
        return str(data.get("error") or "")
    return ""


def _header(exc: SlackApiError, name: str) -> str | None:
    headers = getattr(exc.response, "headers", None) or {}
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list | tuple) and value else value)
    return None


__all__ = ["SlackChannel"]
