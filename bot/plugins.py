"""Plugins: what a feature declares, and the order they load in.

A plugin is a module that exports `plugin = Plugin(name, setup, requires=(...))`. `setup(app)`
only registers (routers, roles, channels, jobs, routes, CLI commands, demo seeders); nothing
touches the database or the network before `app.start()`.

The composition root (`main.py`) names the plugins; `[plugins]` in `huddle.toml` may replace,
extend or trim that list; installed packages add theirs through the entry-point group
`huddle.plugins`. Plugins load in dependency order (`requires` names other plugins); a missing
requirement or a cycle is one clear error. Behaviour never depends on the order of the list:
handler precedence comes from declared role ranks (see `bot/router.py`), not from load order.
"""

from __future__ import annotations

import graphlib
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from pydantic import Field

from bot.config_file import ConfigFile, StrictModel

Setup = Callable[[Any], None]
"""`setup(app)`: the App is passed in; this module never imports it (the App imports this one)."""

ENTRY_POINT_GROUP = "huddle.plugins"


class PluginError(ValueError):
    """A plugin list that cannot load: one line, naming the plugin."""


@dataclass(frozen=True, slots=True)
class Plugin:
    name: str
    setup: Setup
    requires: tuple[str, ...] = ()
    """Names of plugins that must be set up first (their services, roles or channels are used)."""
    description: str = ""
    source: str = field(default="", compare=False)
    """Where it came from (module path or entry point), for error messages and `status`."""


class PluginsSection(StrictModel):
    """`[plugins]` in huddle.toml.

    modules = [...]   # replaces the list main.py names (module paths)
    extra = [...]     # adds module paths
    disable = [...]   # plugin names (or module paths) to leave out, entry points included
    """

    modules: list[str] | None = None
    extra: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)


def _from_module(module: ModuleType, source: str) -> Plugin:
    found = getattr(module, "plugin", None)
    if isinstance(found, Plugin):
        return found if found.source else _with_source(found, source)
    setup = getattr(module, "setup", None)
    if callable(setup):  # a bare module with setup(app): named after its last path part
        return Plugin(source.rpartition(".")[2], setup, tuple(getattr(module, "REQUIRES", ())), source=source)
    raise PluginError(f"plugin {source}: exports neither `plugin = Plugin(...)` nor `setup(app)`")


def _with_source(plugin: Plugin, source: str) -> Plugin:
    return Plugin(plugin.name, plugin.setup, plugin.requires, plugin.description, source)


def load(spec: str | Plugin) -> Plugin:
    """A plugin from a module path (or a Plugin given directly, as tests do)."""
    if isinstance(spec, Plugin):
        return spec
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise PluginError(f"plugin {spec}: no such module") from None
        raise
    return _from_module(module, spec)


def from_entry_points(group: str = ENTRY_POINT_GROUP) -> list[Plugin]:
    found = []
    for ep in entry_points(group=group):
        obj: Any = ep.load()
        source = f"entry point {ep.name} ({ep.value})"
        if isinstance(obj, Plugin):
            found.append(obj if obj.source else _with_source(obj, source))
        elif isinstance(obj, ModuleType):
            found.append(_from_module(obj, source))
        elif callable(obj):
            found.append(Plugin(ep.name, obj, source=source))
        else:
            raise PluginError(f"{source}: is not a Plugin, a module or a setup function")
    return found


def selected(
    defaults: Sequence[str | Plugin], config: ConfigFile | None = None, *, discover: bool = True
) -> list[Plugin]:
    """The plugins to run: the defaults as `[plugins]` edits them, plus installed entry points."""
    section = config.section("plugins", PluginsSection, default={}) if config else PluginsSection()
    specs: list[str | Plugin] = list(section.modules) if section.modules is not None else list(defaults)
    specs += section.extra
    plugins = [load(s) for s in specs]
    if discover:
        known = {p.name for p in plugins}
        plugins += [p for p in from_entry_points() if p.name not in known]
    drop = set(section.disable)
    return [p for p in plugins if p.name not in drop and p.source not in drop]


def ordered(plugins: Iterable[Plugin]) -> list[Plugin]:
    """Dependencies first; otherwise the given order. Duplicates, gaps and cycles are errors."""
    by_name: dict[str, Plugin] = {}
    for p in plugins:
        if p.name in by_name and by_name[p.name].setup is not p.setup:
            raise PluginError(f"two plugins are named {p.name!r}: {by_name[p.name].source} and {p.source}")
        by_name.setdefault(p.name, p)
    for p in by_name.values():
        for need in p.requires:
            if need not in by_name:
                raise PluginError(f"plugin {p.name!r} requires {need!r}, which is not in the plugin list")
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    position = {name: i for i, name in enumerate(by_name)}
    for name, p in by_name.items():
        sorter.add(name, *p.requires)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise PluginError(f"plugins require each other in a circle: {' → '.join(exc.args[1])}") from None
    result: list[Plugin] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        for name in ready:
            result.append(by_name[name])
            sorter.done(name)
    return result
