"""The plugin manager: built-in and third-party plugins load the same way (entry points).

``PHOTOTAG_LOAD_PLUGINS`` (comma-separated entry-point names; empty means none)
limits what loads, like llm's ``LLM_LOAD_PLUGINS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from phototag import hookspecs
from phototag.errors import UnknownBackend, UnknownEngine

if TYPE_CHECKING:
    from phototag.backends import Backend
    from phototag.engines import Engine

GROUP = "phototag"

pm = pluggy.PluginManager(GROUP)
pm.add_hookspecs(hookspecs)
_loaded = False


def load_plugins() -> None:
    """Load entry-point plugins once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    wanted = os.environ.get("PHOTOTAG_LOAD_PLUGINS")
    if wanted is None:
        pm.load_setuptools_entrypoints(GROUP)
        return
    names = {name.strip() for name in wanted.split(",") if name.strip()}
    for ep in entry_points(group=GROUP):
        if ep.name in names and pm.get_plugin(ep.name) is None:
            pm.register(ep.load(), name=ep.name)


def _collect(hook: Callable[..., Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def register(name: str, item: Any) -> None:
        found[name] = item

    hook(register=register)
    return found


def backends() -> dict[str, type[Backend]]:
    load_plugins()
    return _collect(pm.hook.register_backends)


def _lookup(kind: str, available: dict[str, Any], name: str, error: type[Exception],
            hint: str = "") -> Any:  # fmt: skip
    """A registered plugin by name, or an error naming the ones there are."""
    if name not in available:
        known = ", ".join(sorted(available)) or "none loaded"
        raise error(f"unknown {kind} '{name}'{hint}; available: {known}")
    return available[name]


def get_backend(name: str) -> type[Backend]:
    hint = " (install it with: pip install 'phototag[tensorflow]')" if name == "tensorflow" else ""
    return _lookup("backend", backends(), name, UnknownBackend, hint)


def engines() -> dict[str, type[Engine]]:
    load_plugins()
    return _collect(pm.hook.register_engines)


def get_engine(name: str) -> type[Engine]:
    return _lookup("engine", engines(), name, UnknownEngine)


def writers() -> dict[str, Any]:
    load_plugins()
    return _collect(pm.hook.register_writers)


@dataclass
class PluginInfo:
    name: str
    package: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)


def plugin_info() -> list[PluginInfo]:
    """What loaded, from which package, with which hooks (for ``phototag plugins``)."""
    load_plugins()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for plugin in pm.get_plugins():
        dist = dists.get(id(plugin))
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=pm.get_name(plugin) or repr(plugin),
                package=dist.metadata["name"] if dist else None,
                version=dist.version if dist else None,
                hooks=hooks,
            )
        )
    return sorted(infos, key=lambda info: info.name)
