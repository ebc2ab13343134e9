"""The Telegram adapter: aiogram 3's Bot client, long polling (default) or a webhook on the shared server.

Receiving loses nothing: an update is acknowledged to Telegram only after `on_inbound` returned
(the message is committed). Polling uses its own getUpdates loop rather than aiogram's
`Dispatcher.start_polling`, because aiogram moves the offset on as soon as updates are handed to
its handlers; here the offset passes an update only once it is stored, and a storage error means
the same update is fetched again. Webhooks answer 200 after storing and 5xx otherwise, so
Telegram redelivers. Redeliveries are harmless: the provider id starts with the `update_id` and
the inbox drops an id it has seen.

Sending: bodies are Telegram HTML (see `channels/telegram_text.py`: plain text is escaped, the
allowed tags are kept), split at 4,096 characters on line boundaries, buttons become an inline
keyboard on the last part. The outbox paces 30/s overall and 1/s per chat; the 20/min limit of
groups (negative chat ids) is kept here, per part. Huddle owns signals and shutdown: nothing
here installs a signal handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import uuid
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods.base import Response
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from aiohttp import web
from pydantic import ValidationError

from bot.model import Address, Button, Inbound, InboundFile, Outbound
from channels.base import (
    ChannelHealth,
    ChannelPolicy,
    DeliveryHandler,
    InboundHandler,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendResult,
)
from channels.telegram_settings import SECRET_HEADER, TelegramPolicy, TelegramSettings
from channels.telegram_text import plain, split_html

if TYPE_CHECKING:
    from bot.clock import Clock

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
MAX_CALLBACK_BYTES = 64
MAX_DOWNLOAD = 20 * 1024 * 1024
"""The Bot API's getFile limit."""
UNREACHABLE_HINTS = (
    "chat not found",
    "user not found",
    "peer_id_invalid",
    "user is deactivated",
    "bot was kicked",
    "have no rights to send",
    "chat_write_forbidden",
)

_RESPONSE_TYPES = (Response[Message], Response[bool], Response[list[Update]])
"""Strong references: pydantic caches parametrised generics weakly, and aiogram builds
`Response[...]` for every call; once collected, each rebuild costs ~10 ms of schema work."""


class GroupGate:
    """At most `per_minute` sends to one group chat in any 60 s window (a sliding window)."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.sent: dict[int, deque[float]] = {}

    async def wait(self, chat_id: int) -> None:
        if chat_id >= 0:
            return
        window = self.sent.setdefault(chat_id, deque())
        while True:
            now = self.clock.monotonic()
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) < self.per_minute:
                window.append(now)
                return
            await self.clock.sleep(60 - (now - window[0]))


class TelegramChannel:
    name = "telegram"

    def __init__(self, settings: TelegramSettings, clock: Clock, *, backoff: tuple[float, float] = (1.0, 30.0),
                 policy: TelegramPolicy | None = None) -> None:
        if settings.telegram_token is None:
            raise ValueError("HUDDLE_TELEGRAM_TOKEN is not set")
        self.settings = settings
        self.clock = clock
        self.policy: ChannelPolicy = policy or TelegramPolicy(settings)
        session = AiohttpSession()
        if settings.telegram_api_url:
            session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
        self.bot = Bot(settings.telegram_token.get_secret_value(), session=session)
        self.mode = settings.telegram_mode
        self.secret = settings.webhook_secret()
        self.groups = GroupGate(settings.telegram_group_per_minute, clock)
        self.backoff = backoff
        self.username: str | None = (settings.telegram_bot_username or "").lstrip("@") or None
        self.offset: int | None = None
        """The next update id to ask for: every update below it is stored."""
        self.healthy = False
        self.last_ok_at: datetime | None = None
        """When Telegram last answered us (getUpdates, setWebhook) or reached us (a webhook call)."""
        self.last_update_at: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._on_inbound: InboundHandler | None = None
        self._receiving = False
        self._accepting = False
        self._task: asyncio.Task[None] | None = None
        self._progress: dict[object, list[str]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        """Begin receiving in a task (Telegram being down must not stop Huddle from starting)."""
        self._on_inbound = on_inbound
        self._receiving = True
        work = self._poll() if self.mode == "polling" else self._register_webhook()
        self._task = asyncio.create_task(work, name=f"telegram-{self.mode}")

    async def stop_receiving(self) -> None:
        """Stop taking updates and confirm to Telegram those already stored."""
        self._receiving = False
        if self._task is not None:
            if self._accepting:  # let the update being stored finish; the loop then ends by itself
                await asyncio.wait({self._task}, timeout=10)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.mode == "polling" and self.offset is not None:
            # Calling getUpdates with the offset confirms everything below it; what this call
            # returns is not confirmed and comes again next time.
            with contextlib.suppress(Exception):
                await self.bot.get_updates(offset=self.offset, limit=1, timeout=0, request_timeout=5)

    async def stop(self) -> None:
        if self._receiving:
            await self.stop_receiving()
        await self.bot.session.close()

    def health(self) -> ChannelHealth:
        """Up while the last getUpdates succeeded (polling) or the webhook is registered (webhook mode)."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return ChannelHealth(self.healthy and self._receiving, {
            "mode": self.mode,
            "connected": self.healthy,
            "last_ok_at": iso(self.last_ok_at),
            "last_update_at": iso(self.last_update_at),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
        })

    def _ok(self) -> None:
        self.healthy = True
        self.last_ok_at = self.clock.now()

    def _failed(self, error: str) -> None:
        self.healthy = False
        self.last_error = error[:300]
        self.last_error_at = self.clock.now()

    # -- receiving ---------------------------------------------------------------------------

    async def _poll(self) -> None:
        base, cap = self.backoff
        delay = base
        prepared = False
        timeout = self.settings.telegram_poll_timeout
        while self._receiving:
            try:
                if not prepared:
                    await self.bot.delete_webhook(drop_pending_updates=False)  # polling is refused while one is set
                    await self._learn_username()
                    prepared = True
                    self._ok()
                updates = await self.bot.get_updates(
                    offset=self.offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES, request_timeout=timeout + 10
                )
            except asyncio.CancelledError:
                raise
            except TelegramRetryAfter as exc:
                delay = max(delay, float(exc.retry_after))
                log.warning("telegram flood control on getUpdates, waiting %.0fs", delay)
                self._failed(f"flood control: retry after {exc.retry_after}s")
            except TelegramConflictError as exc:
                log.error("telegram getUpdates conflict (another poller or a webhook?): %s", exc.message)
                self._failed(f"conflict: {exc.message}")
            except TelegramUnauthorizedError:
                log.error("telegram rejected the bot token (HUDDLE_TELEGRAM_TOKEN)")
                self._failed("bot token rejected")
            except (AiogramError, OSError, TimeoutError) as exc:
                log.warning("telegram getUpdates failed, retrying in %.0fs: %s", delay, exc)
                self._failed(f"getUpdates failed: {type(exc).__name__}: {exc}")
            else:
                self._ok()
                delay = base
                if await self._accept_all(updates):
                    continue
                self._failed("an update could not be stored")
            await self.clock.sleep(delay)
            delay = min(cap, delay * 2)

    async def _accept_all(self, updates: list[Update]) -> bool:
        """Store each update in order, moving the offset past it; False if one could not be stored."""
        for update in updates:
            if not self._receiving:
                return True  # stopping: the rest comes again next time
            self._accepting = True
            try:
                await self.accept(update)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not store telegram update update_id=%s; fetching it again", update.update_id)
                return False
            finally:
                self._accepting = False
            self.offset = max(self.offset or 0, update.update_id + 1)
        return True

    async def accept(self, update: Update) -> None:
        """Hand one update to Huddle; returns once stored. Raises if it could not be stored."""
        if self._on_inbound is None:
            raise RuntimeError("telegram channel not started")
        inbound = self.to_inbound(update)
        if inbound is None:
            log.debug("telegram update ignored update_id=%s type=%s", update.update_id, update.event_type)
            return
        if update.message is not None:
            inbound.files = await self._files(update.message)
        await self._on_inbound(inbound)
        self.last_update_at = self.clock.now()
        if update.callback_query is not None:
            try:  # stops the button's spinner; a stale query only costs the spinner
                await self.bot.answer_callback_query(update.callback_query.id, request_timeout=10)
            except (AiogramError, OSError, TimeoutError) as exc:
                log.info("answerCallbackQuery failed: %s", exc)

    def to_inbound(self, update: Update) -> Inbound | None:
        if update.message is not None:
            return self._message(update.update_id, update.message)
        if update.callback_query is not None:
            return self._callback(update.update_id, update.callback_query)
        return None

    async def _files(self, message: Message) -> list[InboundFile]:
        """A photo (its largest size under the Bot API's 20 MB download limit) or a document, downloaded.

        A file Telegram refuses to hand out (too big, gone) comes with `content=None` for the handler to
        explain; a network or server failure raises, so the update is fetched (or redelivered) again.
        """
        if message.photo:
            fits = [p for p in message.photo if (p.file_size or 0) <= MAX_DOWNLOAD] or message.photo[:1]
            best = max(fits, key=lambda p: p.width * p.height)
            file_id, unique, size = best.file_id, best.file_unique_id, best.file_size
            name, mimetype = f"photo_{unique}.jpg", "image/jpeg"
        elif message.document is not None:
            doc = message.document
            file_id, unique, size = doc.file_id, doc.file_unique_id, doc.file_size
            name, mimetype = doc.file_name or f"file_{unique}", doc.mime_type
        else:
            return []
        base = InboundFile(name, mimetype, size, provider_id=unique)
        if size is not None and size > MAX_DOWNLOAD:
            log.warning("telegram file over the download limit file_id=%s size=%s", unique, size)
            return [base]
        try:
            found = await self.bot.get_file(file_id, request_timeout=30)
            if not found.file_path:
                return [base]
            data = await self.bot.download_file(found.file_path, timeout=60)
        except TelegramBadRequest as exc:
            log.warning("telegram file not available file_id=%s: %s", unique, exc.message)
            return [base]
        content = data.read() if data is not None else b""
        return [InboundFile(name, mimetype, len(content), content=content, provider_id=unique)]

    async def _learn_username(self) -> None:
        if self.username is None:
            self.username = (await self.bot.me()).username

    def _for_another_bot(self, text: str) -> bool:
        """`/cmd@other_bot` in a group is someone else's command."""
        head = text.split(maxsplit=1)[0] if text.startswith("/") else ""
        _, at, target = head.partition("@")
        return bool(at) and self.username is not None and target.lower() != self.username.lower()

    def _message(self, update_id: int, message: Message) -> Inbound | None:
        user = message.from_user
        if user is not None and user.is_bot:
            return None
        text = message.text or message.caption or ""
        if self._for_another_bot(text):
            return None
        chat_id = message.chat.id
        return Inbound(
            address=Address(self.name, str(chat_id)),
            text=text,
            # update ids may restart at random after a week of silence: the message id keeps
            # the key unique while the update id still names the redelivery.
            provider_id=f"{update_id}:{chat_id}:{message.message_id}",
            received_at=self.clock.now(),
            thread=str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else None,
            display_name=user.full_name if user else None,
        )

    def _callback(self, update_id: int, query: CallbackQuery) -> Inbound:
        message = query.message
        chat_id = message.chat.id if message is not None else query.from_user.id
        data = query.data or ""
        text = data
        markup = getattr(message, "reply_markup", None)
        if isinstance(markup, InlineKeyboardMarkup):
            text = next((b.text for row in markup.inline_keyboard for b in row if b.callback_data == data), data)
        return Inbound(
            address=Address(self.name, str(chat_id)),
            text=text,
            provider_id=f"{update_id}:cb:{query.id}",
            received_at=self.clock.now(),
            callback_data=data,
            display_name=query.from_user.full_name,
        )

    async def handle_webhook(self, request: web.Request) -> web.Response:
        """POST /telegram/webhook: check the secret header, store the update, then answer 200."""
        given = request.headers.get(SECRET_HEADER, "")
        if not given or not self.secret or not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("telegram webhook call with a wrong secret token from %s", request.remote)
            return web.Response(status=401, text="unauthorized")
        if not self._receiving:
            return web.Response(status=503, text="not receiving")
        try:
            update = Update.model_validate(await request.json(), context={"bot": self.bot})
        except (ValueError, ValidationError):
            return web.Response(status=400, text="not a Telegram update")
        try:
            await self.accept(update)
        except Exception as exc:
            log.exception("could not store telegram update update_id=%s; Telegram will redeliver", update.update_id)
            self.last_error, self.last_error_at = f"webhook update not stored: {type(exc).__name__}", self.clock.now()
            return web.Response(status=500, text="try again")
        self.last_ok_at = self.clock.now()
        return web.Response(status=200)

    async def _register_webhook(self) -> None:
        base, cap = self.backoff
        delay = base
        while self._receiving:
            try:
                await self._learn_username()
                await self.bot.set_webhook(
                    url=str(self.settings.telegram_webhook_url),
                    secret_token=self.secret,
                    allowed_updates=ALLOWED_UPDATES,
                    drop_pending_updates=False,
                )
                self._ok()
                log.info("telegram webhook registered")
                return
            except (AiogramError, OSError, TimeoutError) as exc:
                log.warning("telegram setWebhook failed, retrying in %.0fs: %s", delay, exc)
                self._failed(f"setWebhook failed: {type(exc).__name__}: {exc}")
            await self.clock.sleep(delay)
            delay = min(cap, delay * 2)

    async def simulate_inbound(self, address_id: str, text: str) -> None:
        """The console types as a Telegram user would (demo without a bot token)."""
        if self._on_inbound is None:
            raise RuntimeError("telegram channel not started")
        await self._on_inbound(
            Inbound(Address(self.name, address_id), text, f"sim-{uuid.uuid4().hex}", self.clock.now())
        )

    # -- sending -----------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        try:
            chat_id = int(outbound.address.id)
        except ValueError:
            raise PermanentSendError(f"not a Telegram chat id: {outbound.address.id!r}", unreachable=True) from None
        parts = split_html(outbound.body)
        if not parts:
            raise PermanentSendError("empty message")
        keyboard = keyboard_for(outbound.buttons)
        thread = int(outbound.thread) if outbound.thread and outbound.thread.isdigit() else None
        # Parts already sent survive a retry of the rest (same process), so nothing is sent twice.
        key: object = outbound.id if outbound.id is not None else (outbound.idempotency_key or object())
        done = self._progress.setdefault(key, [])
        try:
            for i in range(len(done), len(parts)):
                await self.groups.wait(chat_id)
                markup = keyboard if i == len(parts) - 1 else None
                message = await self._send_part(chat_id, parts[i], markup, thread)
                done.append(f"{chat_id}:{message.message_id}")
        except SendError as exc:
            if not isinstance(exc, RetryableSendError):
                self._progress.pop(key, None)
            raise
        self._progress.pop(key, None)
        return SendResult(done, delivered=True)

    async def _send_part(
        self, chat_id: int, html: str, markup: InlineKeyboardMarkup | None, thread: int | None
    ) -> Message:
        try:
            try:
                return await self.bot.send_message(
                    chat_id, html, parse_mode="HTML", reply_markup=markup, message_thread_id=thread
                )
            except TelegramBadRequest as exc:
                if "can't parse entities" not in exc.message.lower():
                    raise
                log.warning("telegram refused our HTML, sending as plain text: %s", exc.message)
                return await self.bot.send_message(
                    chat_id, plain(html), parse_mode=None, reply_markup=markup, message_thread_id=thread
                )
        except (AiogramError, OSError, TimeoutError) as exc:
            raise send_error(exc) from exc


def keyboard_for(buttons: list[Button]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    for b in buttons:
        if not 1 <= len(b.data.encode()) <= MAX_CALLBACK_BYTES:
            raise PermanentSendError(f"button data must be 1-{MAX_CALLBACK_BYTES} bytes: {b.data[:80]!r}")
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=b.text[:200], callback_data=b.data)] for b in buttons]
    )


def send_error(exc: BaseException) -> SendError:
    """What a Bot API failure means for the outbox: retry later, or give up (and on the address?)."""
    if isinstance(exc, TelegramRetryAfter):
        return RetryableSendError(f"telegram flood control: {exc.message}", retry_after=float(exc.retry_after))
    if isinstance(exc, TelegramMigrateToChat):
        return PermanentSendError(f"group became supergroup {exc.migrate_to_chat_id}", unreachable=True)
    if isinstance(exc, TelegramForbiddenError):
        return PermanentSendError(f"telegram: {exc.message}", unreachable=True)
    if isinstance(exc, TelegramBadRequest):
        low = exc.message.lower()
        return PermanentSendError(f"telegram: {exc.message}", unreachable=any(h in low for h in UNREACHABLE_HINTS))
    if isinstance(exc, TelegramUnauthorizedError):
        log.error("telegram rejected the bot token (HUDDLE_TELEGRAM_TOKEN); messages wait")
        return RetryableSendError("telegram: bot token rejected", retry_after=60.0)
    if isinstance(exc, TelegramAPIError):
        return RetryableSendError(f"telegram: {exc.message}")
    return RetryableSendError(f"telegram: {type(exc).__name__}: {exc}")


__all__ = ["GroupGate", "TelegramChannel", "keyboard_for", "send_error"]
