"""The process: wires storage, router, outbox, scheduler, channels and HTTP, and runs them.

Features arrive as plugins (`bot/plugins.py`): `setup(app)` declares roles and channels,
includes routers, provides dependencies, implements hooks, declares jobs, adds HTTP routes, CLI
commands and demo seeders. `setup` only registers; nothing touches the database or the network
until `start`. The kernel names no audience and no provider: it learns both from the plugins.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from bot import phones
from bot import plugins as plugin_loader
from bot.clock import Clock, SystemClock
from bot.config_file import ConfigFile
from bot.directory import Directory
from bot.dispatcher import Dispatcher
from bot.errors import UserError
from bot.hooks import KernelHooks
from bot.http import HttpServer
from bot.metrics import Metrics, metrics_route
from bot.model import Address, Button, DeliveryReport, Inbound, Outbound, OutboundKind, Person
from bot.observe import Observers
from bot.outbox import Outbox
from bot.plugins import Plugin, PluginError
from bot.process import ROLES, SHARED_ONLY, Heartbeat, Part
from bot.roles import Roles, RoleSpec
from bot.router import Router
from bot.scheduler import Scheduler
from bot.settings import CoreSettings
from channels.base import Channel, ChannelPolicy
from storage.db import Database, DatabaseUnavailable
from storage.people import PeopleRepo

log = logging.getLogger(__name__)

Hook = Callable[["App"], Awaitable[None]]
ExternalLinker = Callable[[str, Person], Awaitable[str]]
"""Maps an external id to a person; returns a line saying what it did."""
S = TypeVar("S", bound=BaseSettings)


@dataclass(slots=True)
class CliCommand:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[App, argparse.Namespace], Awaitable[int | None]]
    needs_db: bool = True


class App:
    def __init__(
        self,
        settings: CoreSettings | None = None,
        *,
        clock: Clock | None = None,
        db: Database | None = None,
        config: ConfigFile | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings or CoreSettings()
        self.clock: Clock = clock or SystemClock()
        self.config = config if config is not None else ConfigFile.load(self.settings.config)
        phones.set_default_region(self.settings.default_region)  # a plugin may narrow it to its store's country
        self.db = db or Database(self.settings.database_url, durable=self.settings.durable_commits)
        self.overrides = dict(overrides or {})
        """Values for plugins' settings classes (tests), applied by `use_settings`."""
        self.people = PeopleRepo(self.db)
        self.roles = Roles()
        self.hooks = KernelHooks()
        self.policies: dict[str, ChannelPolicy] = {}
        self.channels: dict[str, Channel] = {}
        self.router = Router("root")
        self.directory = Directory(self.people, self.clock, self.roles, self.policies.get, self._timezone_for)
        self.outbox = Outbox(self.db, self.clock, self.settings, self.people)
        self.deps: dict[str, Any] = {"app": self, "db": self.db, "clock": self.clock, "people": self.people}
        self.dispatcher = Dispatcher(
            self.db,
            clock=self.clock,
            people=self.people,
            directory=self.directory,
            router=self.router,
            roles=self.roles,
            hooks=self.hooks,
            policies=self.policy,
            send=self.send,
            deps=self.deps,
        )
        self.scheduler = Scheduler(self.db, self.clock, self.settings)
        self.observers = Observers()
        """What the kernel reports as it works (metrics listen here)."""
        self.outbox.observers = self.dispatcher.observers = self.scheduler.observers = self.observers
        self.http = HttpServer(self.settings)
        self.http.channels = self.channels
        self.metrics = Metrics(self.observers, self.db, self.channels, self.clock.now)
        self.http.before_start.append(self.metrics.install)
        scrape = self.settings.metrics_token.get_secret_value() if self.settings.metrics_token else None
        self.http.route("GET", "/metrics", metrics_route(self.http, self.metrics, scrape))
        self.cli_commands: dict[str, CliCommand] = {}
        self.status_sections: list[Callable[[App], Awaitable[list[str]]]] = []
        """Plugins' parts of `python main.py status`: each returns its lines (a title first)."""
        self.external_linkers: dict[str, ExternalLinker] = {}
        """`people add/link --external SOURCE:ID` hands the id to the plugin that owns SOURCE."""
        self.plugins: list[str] = []
        self.settings_objects: list[BaseSettings] = []
        """Plugins' settings, registered with `use_settings` so their secrets are redacted from logs."""
        self.config_people: list[Person] = []
        self._startup: list[tuple[Hook, Part]] = []
        self._shutdown: list[tuple[Hook, Part]] = []
        self._ready: list[tuple[Hook, Part]] = []
        self.role = "run"
        """Which parts of the plugins this process runs (`bot/process.py`): run, gateway or worker."""
        self.parts: frozenset[Part] = ROLES["run"]
        self._registering: Part = Part.WORK
        """The part hooks registered now belong to (a device adapter's while its factory runs)."""
        self.heartbeat: Heartbeat | None = None
        self._listener: Any = None
        self._catching_up: set[asyncio.Task[None]] = set()
        self._seeders: list[Hook] = []
        self._factories: dict[str, tuple[Callable[[], Channel], str]] = {}
        self._summaries: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._started_channels: list[Channel] = []
        self.started = False

    # -- registration (no I/O) ---------------------------------------------------------------

    def load_plugins(self, specs: Iterable[str | Plugin]) -> None:
        """Set up plugins in dependency order, then check what they declared fits together."""
        for plugin in plugin_loader.ordered(plugin_loader.load(s) for s in specs):
            plugin.setup(self)
            self.plugins.append(plugin.name)
        self.finish_setup()

    def finish_setup(self) -> None:
        """Checks that need every plugin: command conflicts, and `[[people]]` against roles and channels."""
        conflicts = self.router.conflicts(self.roles)
        if conflicts:
            raise PluginError(conflicts[0])
        self.config_people = self.directory.people_from_config(self.config)

    def use_settings(self, cls: type[S]) -> S:
        """Load a plugin's settings class (validated now, so a bad value fails at start)."""
        for existing in self.settings_objects:
            if type(existing) is cls:
                return existing  # type: ignore[return-value]
        given = {k: v for k, v in self.overrides.items() if k in cls.model_fields}
        settings = cls(**given)
        self.settings_objects.append(settings)
        return settings

    def declare_role(self, spec: RoleSpec) -> RoleSpec:
        return self.roles.declare(spec)

    def declare_channel(self, policy: ChannelPolicy) -> ChannelPolicy:
        """What Huddle knows about a channel even when its adapter does not run here."""
        known = self.policies.get(policy.name)
        if known is not None and known is not policy:
            raise PluginError(f"channel {policy.name!r} is declared twice")
        self.policies[policy.name] = policy
        return policy

    def policy(self, channel: str) -> ChannelPolicy:
        """The declared policy of `channel`; a neutral one for a name nobody declared."""
        found = self.policies.get(channel)
        if found is None:
            found = self.policies[channel] = ChannelPolicy(channel)
        return found

    def parse_address(self, text: str, channel: str | None = None) -> Address:
        """`channel:id` (or an id on `channel`) written as that channel's policy writes it."""
        from bot.directory import parse_address

        return parse_address(text, self.policies.get, channel)

    async def _timezone_for(self, address: Address | None) -> str:
        """Where a person we have never seen is (quiet hours hold marketing in *their* night)."""
        found = await self.hooks.new_person_timezone(address) if address is not None else None
        return found or self.settings.default_timezone

    def include_router(self, router: Router) -> None:
        self.router.include(router)

    def provide(self, name: str, obj: Any) -> Any:
        """Make `obj` injectable into handlers by parameter name (and reachable as app.deps)."""
        self.deps[name] = obj
        return obj

    def on_external(self, source: str, linker: ExternalLinker) -> None:
        """Claim external ids of `source` (e.g. "amocrm"): `linker(ref, person)` maps one to a person."""
        self.external_linkers[source.lower()] = linker

    def add_channel(self, channel: Channel) -> None:
        """Run this adapter here; its policy is declared with it if it was not already."""
        if self.policies.get(channel.name) is not channel.policy:
            self.policies[channel.name] = channel.policy
        self.channels[channel.name] = channel

    def add_channel_factory(self, name: str, factory: Callable[[], Channel], summary: str) -> None:
        """Run a channel here, built only when the bot starts (so other commands never import it)."""
        self._factories[name] = (factory, summary)
        self._summaries[name] = summary

    def channel_summaries(self) -> dict[str, str]:
        """What runs (or would run) for each declared channel, for `status` and the logs."""
        found: dict[str, str] = {}
        for name, policy in self.policies.items():
            stand_in = self.hooks.stand_in(policy) if name not in self._summaries else None
            found[name] = getattr(stand_in, "summary", None) or "declared, not configured"
        found.update(self._summaries)
        for name, channel in self.channels.items():
            found[name] = getattr(channel, "summary", None) or found.get(name) or type(channel).__name__
        return dict(sorted(found.items()))

    def placement(self, channel: str) -> Part:
        """Where `channel`'s adapter runs: the gateway (this machine's devices) or the workers."""
        chosen = self.settings.gateway_channels
        if chosen is not None:
            return Part.DEVICE if channel in chosen else Part.WORK
        policy = self.policies.get(channel)
        return Part.DEVICE if policy is not None and policy.local_device else Part.WORK

    def build_channels(self) -> None:
        """The configured adapters of this role's parts, then (all-in-one only) a stand-in for every
        other declared channel, if a plugin offers one."""
        for name, (factory, _summary) in list(self._factories.items()):
            part = self.placement(name)
            if name not in self.channels and part in self.parts:
                self._registering = part
                try:
                    self.add_channel(factory())
                finally:
                    self._registering = Part.WORK
        self._factories.clear()
        if self.parts != ROLES["run"]:
            return  # a gateway or worker never answers for a channel another process runs
        for name, policy in list(self.policies.items()):
            if name not in self.channels:
                stand_in = self.hooks.stand_in(policy)
                if stand_in is not None:
                    self.add_channel(stand_in)

    def on_startup(self, hook: Hook) -> Hook:
        self._startup.append((hook, self._registering))
        return hook

    def on_ready(self, hook: Hook) -> Hook:
        """Runs at the end of `start`, when channels, outbox and HTTP are up."""
        self._ready.append((hook, self._registering))
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self._shutdown.append((hook, self._registering))
        return hook

    def _hooks(self, hooks: list[tuple[Hook, Part]]) -> list[Hook]:
        """The hooks of the parts this process runs (a plugin's own start-up runs with its part)."""
        return [hook for hook, part in hooks if part in self.parts]

    def on_seed_demo(self, hook: Hook) -> Hook:
        """Runs once, on the first start of an empty database, when demo data is enabled."""
        self._seeders.append(hook)
        return hook

    def add_status(self, section: Callable[[App], Awaitable[list[str]]]) -> None:
        """Add lines to `python main.py status` (called with the app, database open)."""
        self.status_sections.append(section)

    def add_cli(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[App, argparse.Namespace], Awaitable[int | None]],
        *,
        needs_db: bool = True,
    ) -> None:
        if name in self.cli_commands:
            raise ValueError(f"CLI command {name!r} registered twice")
        self.cli_commands[name] = CliCommand(name, help, configure, run, needs_db)

    # -- sending -----------------------------------------------------------------------------

    async def send(
        self,
        address: Address,
        body: str,
        *,
        kind: OutboundKind = OutboundKind.PROACTIVE,
        key: str | None = None,
        buttons: list[Button] | None = None,
        thread: str | None = None,
        person: Person | None = None,
        compliance: bool = False,
    ) -> Outbound:
        """Queue a message through the outbox (the only way anything is sent)."""
        if person is None:
            person = await self.people.by_address(address)
        quiet_tz = None
        if kind is OutboundKind.PROACTIVE and self._holds_for_quiet_hours(address, person):
            quiet_tz = person.timezone if person and person.timezone else await self._timezone_for(address)
        outbound = Outbound(
            address=address,
            body=body,
            kind=kind,
            idempotency_key=key,
            buttons=list(buttons or []),
            thread=thread,
            person_id=person.id if person else None,
            quiet_tz=quiet_tz,
            compliance=compliance,
        )
        queued = await self.outbox.enqueue(outbound)
        if buttons and kind is OutboundKind.PROACTIVE and person is not None and person.id is not None:
            await self._remember_numbered(person.id, address.channel, buttons)
        return queued

    async def _remember_numbered(self, person_id: int, channel_name: str, buttons: list[Button]) -> None:
        """A proactive message's buttons shown as numbers: "2" from its recipient presses the second.

        Replies do the same through `Context.reply` (the state is saved after the handler).
        """
        if self.policy(channel_name).capabilities.buttons:
            return
        repo = self.dispatcher.conversations
        state = await repo.load(person_id, channel_name)
        state["_buttons"] = [(b.text, b.data) for b in buttons]
        await repo.save(person_id, channel_name, state, self.clock.now())

    def _holds_for_quiet_hours(self, address: Address, person: Person | None) -> bool:
        if person is None:
            return self.policy(address.channel).texting
        return self.roles.quiet_hours(person.roles)

    async def person_for(self, address: Address) -> Person | None:
        return await self.people.by_address(address)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open_db(self, *, create: bool = True) -> None:
        """Check the database answers (one line if not), then apply pending migrations.

        `create=False` is for commands that must not make a new database out of a typo'd URL.
        """
        try:
            await self.db.check(create=create)
            await self.db.upgrade()
        except DatabaseUnavailable as exc:
            raise UserError(str(exc)) from None

    async def seed_demo_if_empty(self) -> bool:
        if not self.settings.demo or await self.people.count() > 0:
            return False
        log.info("seeding demo data")
        for hook in self._seeders:
            await hook(self)
        return True

    def set_role(self, role: str) -> None:
        """Run only `role`'s parts (`run`, `gateway`, `worker`); gateway and worker need PostgreSQL."""
        if role not in ROLES:
            raise UserError(f"unknown process role {role!r}; known: {', '.join(ROLES)}")
        if role in SHARED_ONLY and self.db.dialect != "postgresql":
            raise UserError(f"`{role}` shares the database with other processes, which needs PostgreSQL "
                            "(HUDDLE_DATABASE_URL=postgresql://…); on SQLite run everything in one process "
                            "with `python main.py run`")
        self.role, self.parts = role, ROLES[role]

    async def start(self, *, run_scheduler: bool = True, role: str | None = None) -> None:
        """Open the database, seed, start channels, the outbox, the scheduler and HTTP.

        `role` (default: as set, `run`) chooses the parts: a gateway starts only the adapters
        placed on this machine, stores what they receive and sends their outbox; a worker starts
        the rest. Tests pass `run_scheduler=False` and fire jobs with `scheduler.run_due()` on a
        fake clock.
        """
        if role is not None:
            self.set_role(role)
        work = Part.WORK in self.parts
        shared = self.db.dialect == "postgresql"
        http = self.settings.http_enabled and work
        if http:
            await self._bind_http()
        await self.open_db()
        if work:
            await self.seed_demo_if_empty()
            # read again now that plugins have set the phone region (a store's country) and zones
            self.config_people = self.directory.people_from_config(self.config)
            added = await self.directory.add_people(self.config_people)
            if added:
                log.info("added people from config count=%d", added)
        self.build_channels()
        for hook in self._hooks(self._startup):
            await hook(self)
        s = self.settings
        self.heartbeat = Heartbeat(self.db, self.clock, s.worker_id, self.role, s.heartbeat_interval,
                                   s.process_lease, on_lost=self.outbox.lease_lost, on_back=self._database_back)
        await self.heartbeat.start()
        for channel in self.channels.values():
            self.outbox.register(channel)
        self.outbox.exclusive = self.dispatcher.exclusive = not shared
        self.dispatcher.owner = s.worker_id
        self.dispatcher.handling = work
        self.dispatcher.claim_batch = s.claim_batch
        self.dispatcher.poll_interval = s.outbox_poll_interval
        await self.outbox.recover()
        for channel in self.channels.values():
            await channel.start(self.inbound, self.delivery)
            self._started_channels.append(channel)
            log.info("channel started channel=%s", channel.name)
        if work:
            await self.dispatcher.recover()
        self.outbox.start()
        if shared:
            self._start_listener(work)
        if work:
            await self.scheduler.record_schedule()  # before any catch-up: what was due earlier was never ours
        if run_scheduler and work:
            self.scheduler.start()
        if http:
            await self.http.start()
        self.started = True
        for hook in self._hooks(self._ready):
            await hook(self)

    def _database_back(self) -> None:
        """The database answers again: adapters read what their providers kept meanwhile, work resumes."""
        from channels.base import catch_up

        for channel in self.channels.values():
            task = asyncio.create_task(catch_up(channel), name=f"catch-up-{channel.name}")
            self._catching_up.add(task)
            task.add_done_callback(self._catching_up.discard)
        self.outbox.wake("")
        self.dispatcher.wake.set()

    def _start_listener(self, work: bool) -> None:
        """Wake on other processes' commits (LISTEN/NOTIFY): a reply to send, a message to handle."""
        from storage.notify import INBOUND, OUTBOX, Listener

        handlers = {OUTBOX: self.outbox.wake}
        if work:
            handlers[INBOUND] = lambda _channel: self.dispatcher.wake.set()

        def woken() -> None:  # (re)connected: what was notified meanwhile is unknown, so look now
            self.outbox.wake("")
            self.dispatcher.wake.set()

        self._listener = Listener(self.db.url, handlers, woken)
        self._listener.start()

    async def _bind_http(self) -> None:
        """Take the HTTP port before anything starts, so a busy port is one line and nothing else ran."""
        host, port = self.settings.http_host, self.settings.http_port
        try:
            await self.http.bind()
        except OSError as exc:
            reason = "is in use (is another Huddle running?)" if exc.errno == errno.EADDRINUSE else (
                f"cannot be opened ({exc.strerror or exc})")
            raise UserError(f"HTTP port {host}:{port} {reason}: stop that process, or set HUDDLE_HTTP_PORT "
                            "(0 picks a free port) or HUDDLE_HTTP_ENABLED=false") from None

    async def inbound(self, message: Inbound) -> None:
        """Channels call this; it returns once the message is committed."""
        await self.dispatcher.ingest(message)

    async def delivery(self, report: DeliveryReport) -> None:
        await self.outbox.delivery(report)

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Stop taking inbound, finish in-flight work and sends, close the database."""
        if not self.started:  # start-up failed half-way: undo what it did
            await self.http.stop()
            if self.heartbeat is not None:
                await self.heartbeat.stop()
            for channel in reversed(self._started_channels):
                try:
                    await channel.stop()
                except Exception:
                    log.exception("channel stop failed channel=%s", channel.name)
            self._started_channels.clear()
            await self.db.close()
            return
        self.started = False
        await self.http.stop()
        await self.scheduler.stop()
        for channel in list(self.channels.values()):
            try:
                await channel.stop_receiving() if hasattr(channel, "stop_receiving") else None
            except Exception:
                log.exception("channel stop_receiving failed channel=%s", channel.name)
        await self.dispatcher.drain(timeout=self.settings.shutdown_grace)
        await self.outbox.stop(timeout=self.settings.shutdown_grace)
        for channel in list(self.channels.values()):
            try:
                await channel.stop()
            except Exception:
                log.exception("channel stop failed channel=%s", channel.name)
        for hook in reversed(self._hooks(self._shutdown)):
            try:
                await hook(self)
            except Exception:
                log.exception("shutdown hook failed")
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self.heartbeat is not None:
            await self.heartbeat.stop()  # last: the lease ends once what was claimed is finished or given back
        await self.db.close()


def roles_text(roles: Iterable[str]) -> str:
    return ", ".join(sorted(str(r) for r in roles)) or "-"
