"""Plugins: discovery through entry points, limiting with PHOTOTAG_LOAD_PLUGINS, hook docs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phototag import hookspecs
from phototag.cli import cli
from tests.conftest import env_for_subprocess

PLUGIN_SOURCE = """
import numpy as np
from phototag.backends import Backend
from phototag.hookspecs import hookimpl
import click


class ConstantBackend(Backend):
    name = "constant"

    def run_batch(self, pixels):
        n = len(pixels)
        logits = np.zeros((n, 1000), dtype=np.float32)
        logits[:, 281] = 20.0  # ImageNet "tabby cat": every photo is a cat
        return {"features": np.ones((n, 8), dtype=np.float32), "logits": logits}


@hookimpl
def register_backends(register):
    register("constant", ConstantBackend)


@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        "Say hello from a plugin."
        click.echo("hello from phototag-constant")
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third-party plugin package, built and installed by pip into its own folder."""
    src = tmp_path_factory.mktemp("phototag-constant")
    (src / "phototag_constant.py").write_text(PLUGIN_SOURCE)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "phototag-constant"
            version = "1.0"
            [project.entry-points.phototag]
            constant = "phototag_constant"
            [tool.setuptools]
            py-modules = ["phototag_constant"]
            """
        )
    )
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    return site


def phototag(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phototag", *args],
        capture_output=True, text=True, env=env_for_subprocess(PYTHONPATH=str(site), **env),
    )  # fmt: skip


def test_third_party_plugin_is_discovered_and_used(
    plugin_site: Path, photos: Path, tmp_path: Path
) -> None:
    listed = json.loads(phototag(plugin_site, "plugins", "--json").stdout)
    by_name = {p["name"]: p for p in listed}
    assert by_name["constant"]["package"] == "phototag-constant"
    assert set(by_name["constant"]["hooks"]) == {"register_backends", "register_commands"}
    assert by_name["onnx"]["package"] == "phototag"  # built-ins register the same way
    assert phototag(plugin_site, "hello").stdout.strip() == "hello from phototag-constant"
    catalog = tmp_path / "c.db"
    done = phototag(
        plugin_site, "--catalog", str(catalog), "--backend", "constant", "index", "--no-write",
        "--json", str(photos),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new"] == len(list(photos.iterdir()))
    tags = json.loads(
        phototag(plugin_site, "--catalog", str(catalog), "tags", str(photos / "coffee.png"),
                 "--json").stdout
    )  # fmt: skip
    assert "cat" in [t["tag"] for t in tags["tags"]]  # the constant backend's verdict


def test_load_plugins_env_limits_what_loads(plugin_site: Path) -> None:
    only = json.loads(
        phototag(plugin_site, "plugins", "--json", PHOTOTAG_LOAD_PLUGINS="constant").stdout
    )
    assert [p["name"] for p in only] == ["constant"]
    assert (
        json.loads(phototag(plugin_site, "plugins", "--json", PHOTOTAG_LOAD_PLUGINS="").stdout)
        == []
    )
    missing = phototag(plugin_site, "--backend", "onnx", "tags", "x.jpg", PHOTOTAG_LOAD_PLUGINS="")
    assert missing.returncode == 1 and "unknown backend 'onnx'" in missing.stderr


def test_every_hook_is_documented_and_tested() -> None:
    """Every hookspec (found, not listed by hand) is in the docs and has a test_hook_<name>."""
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    specs = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert specs
    for name in specs:
        assert f"{name}(" in docs, f"{name} missing from docs/plugins.md"
        assert callable(globals().get(f"test_hook_{name}")), f"no test_hook_{name}"


def test_hook_register_backends() -> None:
    from phototag import plugins
    from tests.fakes import FakeBackend

    assert plugins.get_backend("fake") is FakeBackend  # registered by conftest, like a plugin


def test_hook_register_writers() -> None:
    from phototag import plugins, writers

    assert plugins.writers()["exiftool"] is writers.open_writer


def test_hook_register_engines() -> None:
    from phototag import engines, plugins

    # both built-in engines come through their entry points; ray's registers without Ray
    assert plugins.get_engine("local") is engines.LocalEngine
    assert plugins.engines()["ray"].__module__ == "phototag_ray.engine"


def test_an_engine_plugin_does_the_embedding_and_the_driver_the_rest(
    photos: Path, tmp_path: Path
) -> None:
    """An engine's results are what the catalog stores: the echo engine's error per photo."""
    from phototag.engines import Computed, Engine
    from phototag.hookspecs import hookimpl
    from phototag.plugins import pm
    from tests.conftest import run_cli

    class Echo(Engine):
        name = "echo"

        def compute(self, paths, work):  # type: ignore[no-untyped-def]
            for i in range(len(paths)):
                yield [(i, Computed(size=1, mtime_ns=1, error=f"echoed {i}"))]

    class EchoPlugin:
        @hookimpl
        def register_engines(self, register):  # type: ignore[no-untyped-def]
            register("echo", Echo)

    pm.register(EchoPlugin(), name="test-engines")
    try:
        code, _out, err = run_cli(
            "--backend", "fake", "index", "--no-write", "--engine", "echo", str(photos),
            catalog=tmp_path / "c.db",
        )  # fmt: skip
    finally:
        pm.unregister(name="test-engines")
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == len(list(photos.iterdir()))
    assert all(line.startswith("skipping ") and ": echoed " in line for line in lines)
    code, _out, err = run_cli("index", "--engine", "nope", str(photos), catalog=tmp_path / "c.db")
    assert code == 2 and err.strip() == "error: unknown engine 'nope'; available: local, ray"
    code, _out, err = run_cli("index", "--ray-address", "auto", str(photos))
    assert code == 2 and "needs --engine ray" in err and "Traceback" not in err


def test_hook_register_commands() -> None:
    import click

    from phototag.hookspecs import hookimpl
    from phototag.plugins import pm

    class Commands:
        @hookimpl
        def register_commands(self, cli):  # type: ignore[no-untyped-def]
            @cli.command(name="test-hello")
            def hello() -> None:
                "Say hello from a test plugin."
                click.echo("hello")

    pm.register(Commands(), name="test-commands")
    try:
        pm.hook.register_commands(cli=cli)
        assert cli.commands["test-hello"].help == "Say hello from a test plugin."
    finally:
        pm.unregister(name="test-commands")
        cli.commands.pop("test-hello", None)


def test_every_command_has_help() -> None:
    from click.testing import CliRunner

    for name, command in cli.commands.items():
        assert command.help, name
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name


def test_engine_ray_without_ray_says_how_to_get_it(tmp_path: Path, photos: Path) -> None:
    """Ray made unimportable (a module that fails as a missing one does): one line, exit 2."""
    stub = tmp_path / "no-ray"
    stub.mkdir()
    (stub / "ray.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\")\n")
    done = phototag(
        stub, "--catalog", str(tmp_path / "c.db"), "index", "--engine", "ray", "--no-write",
        str(photos),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: engine ray needs ray: pip install 'phototag[ray]'\n"
