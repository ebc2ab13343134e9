"""The kernel as a plugin author meets it: plugins in dependency order, open roles, declared
precedence, composable filters, hooks with one owner."""

from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bot.config_file import ConfigFile
from bot.context import Context
from bot.hooks import HookError, KernelHooks
from bot.model import Address, Person
from bot.plugins import Plugin, PluginError, from_entry_points, ordered, selected
from bot.roles import RoleSpec
from bot.router import Regex, Router, SkipHandler, Text
from coaching.roles import Role
from tests.flows import Flow

# -- plugins: dependency order, gaps and circles ---------------------------------------------------


def _p(name: str, *requires: str, log: list[str] | None = None) -> Plugin:
    return Plugin(name, lambda app: (log or []).append(name), requires=requires)


def test_plugins_load_in_dependency_order_whatever_the_list_says() -> None:
    names = [p.name for p in ordered([_p("customers", "store"), _p("web"), _p("store")])]
    assert names.index("store") < names.index("customers")
    assert set(names) == {"customers", "web", "store"}


def test_a_missing_requirement_and_a_circle_are_one_line_each() -> None:
    with pytest.raises(PluginError, match="'customers' requires 'store'"):
        ordered([_p("customers", "store")])
    with pytest.raises(PluginError, match="circle"):
        ordered([_p("a", "b"), _p("b", "a")])
    with pytest.raises(PluginError, match="two plugins are named"):
        ordered([_p("a"), Plugin("a", lambda app: None)])


def test_the_toml_file_edits_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "my_extra_plugin.py"
    module.write_text(textwrap.dedent('''
        from bot.plugins import Plugin

        def setup(app):
            app.provide("extra", True)

        plugin = Plugin("extra", setup)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = ConfigFile({"plugins": {"extra": ["my_extra_plugin"], "disable": ["telegram"]}})
    names = [p.name for p in selected(["bot.builtin", "channels.telegram"], config, discover=False)]
    assert names == ["core", "extra"]
    with pytest.raises(PluginError, match="no such module"):
        selected(["no.such.plugin"], ConfigFile({}), discover=False)
    sys.modules.pop("my_extra_plugin", None)


def test_installed_packages_add_plugins_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    class EntryPoint:
        name = "thirdparty"
        value = "thirdparty.plugin:plugin"

        def load(self) -> Plugin:
            return Plugin("thirdparty", lambda app: None)

    monkeypatch.setattr("bot.plugins.entry_points", lambda group: [EntryPoint()] if group == "huddle.plugins" else [])
    assert [p.name for p in from_entry_points()] == ["thirdparty"]
    assert "thirdparty" in [p.name for p in selected(["bot.builtin"], ConfigFile({}))]
    assert "thirdparty" not in [
        p.name for p in selected(["bot.builtin"], ConfigFile({"plugins": {"disable": ["thirdparty"]}}))
    ]


# -- open roles and declared precedence ------------------------------------------------------------

STORE_PLUGINS = ["handlers.store", "handlers.customers", "handlers.budtenders"]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_customer_who_is_also_a_budtender_gets_the_same_answer_in_any_plugin_order(seed: int) -> None:
    order = list(STORE_PLUGINS)
    random.Random(seed).shuffle(order)
    flow = await Flow.create(plugins=order)
    try:
        both = await flow.person("Dana", {Role.CUSTOMER, Role.BUDTENDER}, sms="+16195550123")
        [answer] = await flow.send(both, "POINTS")
        # the budtender's own points (staff outrank customers), whichever plugin loaded first
        assert "Every $1 you sell earns you" in answer
    finally:
        await flow.close()


async def test_a_stored_role_no_plugin_declares_is_kept_and_grants_nothing() -> None:
    flow = await Flow.create(plugins=["bot.builtin"])
    try:
        ghost = await flow.person("Gus", {"retired_role"}, telegram="77")
        [answer] = await flow.send(ghost, "/help")
        assert "enroll" in answer.lower()  # treated as someone we don't know yet, no crash
        again = await flow.app.people.by_address(Address("telegram", "77"))
        assert again is not None and again.roles == {"retired_role"}  # kept as stored
    finally:
        await flow.close()


async def test_two_plugins_answering_one_command_for_one_role_are_refused_at_start() -> None:
    first, second = Router("first"), Router("second")

    @first.command("stale", roles={Role.SALES_MANAGER})
    async def a(ctx: Context) -> str:
        return "a"

    @second.command("stale", roles={Role.SALES_MANAGER})
    async def b(ctx: Context) -> str:
        return "b"

    def setup(app: Any) -> None:
        app.include_router(first)
        app.include_router(second)

    with pytest.raises(PluginError, match=r"'stale' is answered by both first\.a and second\.b"):
        await Flow.create(plugins=[Plugin("twice", setup)])


def test_roles_declare_their_policy_once() -> None:
    from bot.roles import Roles

    roles = Roles()
    roles.declare(RoleSpec("member", rank=10, enrol_from=frozenset({"phone"})))
    roles.declare(RoleSpec("member", rank=10, enrol_from=frozenset({"phone"})))  # the same again is fine
    with pytest.raises(ValueError, match="declared twice"):
        roles.declare(RoleSpec("member", rank=20))
    with pytest.raises(ValueError, match="both enrol unknown senders"):
        roles.declare(RoleSpec("visitor", enrol_from=frozenset({"phone"})))
    with pytest.raises(ValueError, match="lower-case"):
        RoleSpec("Member")


# -- filters and SkipHandler -----------------------------------------------------------------------


async def test_filters_compose_inject_what_they_found_and_skip_passes_on() -> None:
    router = Router("filters")
    seen: list[str] = []

    @router.message(Regex(r"order #(\d+)") & ~Text(contains="cancel"), roles={Role.CUSTOMER})
    async def order(ctx: Context, match: Any) -> str:
        return f"order {match.group(1)}"

    @router.message(Text(startswith="hello") | Text(equals={"hi", "hey"}), roles={Role.CUSTOMER})
    async def greeting(ctx: Context) -> str:
        seen.append(ctx.text)
        raise SkipHandler  # not for me after all: the next candidate answers

    @router.message(roles={Role.CUSTOMER})
    async def anything(ctx: Context) -> str:
        return "anything"

    flow = await Flow.create(plugins=[Plugin("f", lambda app: app.include_router(router))])
    try:
        cara = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
        assert await flow.send(cara, "where is order #42?") == ["order 42"]
        assert await flow.send(cara, "cancel order #42") == ["anything"]
        assert await flow.send(cara, "hey") == ["anything"] and seen == ["hey"]
    finally:
        await flow.close()


# -- hooks -----------------------------------------------------------------------------------------


def test_a_hook_has_one_owner() -> None:
    hooks = KernelHooks()
    assert "STOP" in hooks.contact_text(None, "sms")
    hooks.contact_text.implement(lambda person, channel: "Acme: 555-0100", owner="shop")
    assert hooks.contact_text(Person(None, "x"), "sms") == "Acme: 555-0100"
    with pytest.raises(HookError, match="both 'shop' and 'other'"):
        hooks.contact_text.implement(lambda person, channel: "?", owner="other")
