"""The command line: a thin click layer. Each command opens the library, makes one call,
and turns typed errors into one-line messages."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from phototag.config import load_config
from phototag.errors import BadQuery, PhotoError, PhototagError, UnknownEngine, UnknownWord
from phototag.events import EventPrinter, summary_line, write_mode
from phototag.files import display
from phototag.library import MAX_LIMIT, Library
from phototag.query import Filters, Query, parse_date


def _json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=None))


def _library(ctx: click.Context) -> Library:
    return ctx.find_object(Library)  # type: ignore[return-value]


#: core commands whose modules load only when they run (keeps queries fast)
LAZY_COMMANDS = {"watch": ("phototag.watcher", "watch_command")}


class PhototagGroup(click.Group):
    """Loads lazy core commands, and plugin commands only for names the core does not have."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            import importlib

            module, attr = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        if command is None:
            _load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_plugin_commands()
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))


@click.group(cls=PhototagGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--catalog", type=click.Path(dir_okay=False, path_type=Path), envvar="PHOTOTAG_CATALOG",
    help="Catalog file (default: catalog.db in the user data dir).",
)  # fmt: skip
@click.option("--backend", default=None, help="Inference backend (default: onnx).")
@click.option("--model", default=None, help="Model name (default: the shipped model).")
@click.option(
    "--vocabulary", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tag vocabulary file (one word per line) to restrict or extend the tags.",
)  # fmt: skip
@click.option("-v", "--verbose", count=True, help="Say more (repeat for more).")
@click.version_option(package_name="phototag", prog_name="phototag")
@click.pass_context
def cli(
    ctx: click.Context,
    catalog: Path | None,
    backend: str | None,
    model: str | None,
    vocabulary: Path | None,
    verbose: int,
) -> None:
    """Tag and search photos with a visual-semantic model, offline."""
    library = Library(
        catalog, backend=backend, model=model, config=load_config(), vocabulary=vocabulary,
        verbose=verbose,
    )  # fmt: skip
    ctx.obj = library
    ctx.call_on_close(library.close)


def write_mode_options(func: Any) -> Any:
    func = click.option("--sidecar", is_flag=True, help="Write XMP sidecars; never touch photos.")(
        func
    )
    func = click.option("--no-write", is_flag=True, help="Only update the catalog.")(func)
    return func


def _write_mode(library: Library, no_write: bool, sidecar: bool) -> str:
    return write_mode(library.config.write, no_write, sidecar)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@write_mode_options
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--engine", default="local", show_default=True,
    help="Where embeddings are computed: local, ray (pip install 'phototag[ray]'), a plugin's.",
)  # fmt: skip
@click.option(
    "--ray-address", metavar="ADDR",
    help="The Ray cluster for --engine ray (default: start a small local one).",
)  # fmt: skip
@click.pass_context
def index(
    ctx: click.Context, paths: tuple[Path, ...], no_write: bool, sidecar: bool, dry_run: bool,
    as_json: bool, engine: str, ray_address: str | None,
) -> None:  # fmt: skip
    """Index folders and files: embed new or changed photos, tag them, write the tags."""
    library = _library(ctx)
    printer = EventPrinter(verbose=library.verbose, dry_run=dry_run)
    show_bar = sys.stderr.isatty() and not as_json
    with click.progressbar(length=0, label="indexing", file=sys.stderr, hidden=not show_bar) as bar:

        def on_event(event: Any) -> None:
            if event.kind == "skipped" and show_bar:
                click.echo("", err=True)
            printer(event)

        def on_progress(n: int) -> None:
            bar.update(n)

        def on_plan(total: int) -> None:
            bar.length = total  # known once the scan is done

        summary = library.index(
            list(paths), write=_write_mode(library, no_write, sidecar), dry_run=dry_run,
            on_event=on_event, on_progress=on_progress, on_plan=on_plan, engine=engine,
            address=ray_address,
        )  # fmt: skip
    if as_json:
        _json({**summary.as_dict(), "dry_run": dry_run})
    else:
        click.echo(summary_line(summary, dry_run))


def grid_option(func: Any) -> Any:
    return click.option(
        "--grid", metavar="FILE",
        help="Also write a contact sheet (.jpg or .png; - writes a PNG to stdout instead).",
    )(func)  # fmt: skip


def _check_grid(grid: str | None, as_json: bool) -> None:
    """Before any work: a sheet name we can write, and stdout not wanted twice."""
    if grid is None:
        return
    from phototag.contactsheet import sheet_format  # Pillow: only when a sheet is wanted

    sheet_format(grid)
    if grid == "-" and as_json:
        raise BadQuery("--grid - and --json both want stdout: give --grid a file name")


def _write_grid(grid: str | None, tiles: Any, **options: Any) -> bool:
    """Write the sheet if asked; True when it went to stdout (then nothing else may)."""
    if grid is None:
        return False
    from phototag import contactsheet

    if tiles:
        contactsheet.write(tiles, grid, **options)
    return grid == "-"


def _print_hits(hits: list[Any], as_json: bool, grid: str | None = None) -> None:
    if grid is not None:
        from phototag.contactsheet import hit_tiles

        if _write_grid(grid, hit_tiles(hits)):
            if not hits:
                click.echo("no photos found", err=True)
            return
    if as_json:
        _json([hit.as_dict() for hit in hits])
        return
    if not hits:
        click.echo("no photos found", err=True)
    for hit in hits:
        click.echo(f"{hit.score:6.3f}  {display(hit.path)}  {', '.join(hit.tags[:5])}")


def filter_options(func: Any) -> Any:
    """--in, --after, --before, --tag, --min-score: on every query command."""
    for option in reversed(
        [
            click.option("--in", "folders", multiple=True, type=click.Path(path_type=Path),
                         help="Only photos under this folder (repeatable: any of them)."),
            click.option("--after", metavar="DATE",
                         help="Only photos taken on or after DATE (2019, 2019-06, 2019-06-01)."),
            click.option("--before", metavar="DATE",
                         help="Only photos taken before DATE (--after 2019 --before 2020: 2019)."),
            click.option("--tag", "tags", multiple=True, metavar="TAG",
                         help="Only photos with this tag or keyword, or one under it "
                              "(repeatable: all of them)."),
            click.option("--min-score", type=float, metavar="S",
                         help="Only photos scoring at least S."),
        ]
    ):  # fmt: skip
        func = option(func)
    return func


def _filters(
    folders: tuple[Path, ...], after: str | None, before: str | None, tags: tuple[str, ...],
    min_score: float | None,
) -> Filters:  # fmt: skip
    return Filters(
        folders=folders, after=parse_date(after, option="--after") if after else None,
        before=parse_date(before, option="--before") if before else None, tags=tags,
        min_score=min_score,
    )  # fmt: skip


@cli.command()
@click.option(
    "--word", "-w", "words", multiple=True,
    help="A word or phrase, e.g. dog or 'golden retriever' (repeatable: all count).",
)  # fmt: skip
@click.option("--not", "nots", multiple=True, metavar="WORD",
              help="Photos showing WORD fall out or sink (repeatable).")  # fmt: skip
@click.option(
    "--like", "likes", multiple=True, type=click.Path(path_type=Path), metavar="IMAGE",
    help="Photos like this one (catalogued or not), combined with the words.",
)  # fmt: skip
@filter_options
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, MAX_LIMIT))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@grid_option
@click.pass_context
def find(
    ctx: click.Context, words: tuple[str, ...], nots: tuple[str, ...], likes: tuple[Path, ...],
    limit: int, as_json: bool, grid: str | None, **filters: Any,
) -> None:  # fmt: skip
    """Photos best matching words and example photos, best first."""
    query = Query(words=words, nots=nots, like=likes, filters=_filters(**filters), limit=limit)
    _check_grid(grid, as_json)
    _print_hits(_library(ctx).find(query), as_json, grid)


@cli.command()
@click.argument("image", type=click.Path(path_type=Path))
@filter_options
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, MAX_LIMIT))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@grid_option
@click.pass_context
def similar(
    ctx: click.Context, image: Path, limit: int, as_json: bool, grid: str | None, **filters: Any
) -> None:
    """Photos most similar to IMAGE (catalogued or not), best first: find --like IMAGE."""
    filtered = _filters(**filters)
    _check_grid(grid, as_json)
    _print_hits(_library(ctx).similar(image, limit=limit, filters=filtered), as_json, grid)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--threshold", type=click.FloatRange(-1.0, 1.0), metavar="T",
    help="Visual similarity at which photos count as the same (default 0.87).",
)  # fmt: skip
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of groups.")
@grid_option
@click.pass_context
def duplicates(
    ctx: click.Context, paths: tuple[Path, ...], threshold: float | None, as_json: bool,
    grid: str | None, **filters: Any,
) -> None:  # fmt: skip
    """Groups of the same photo under PATHS (all if none): identical bytes, then nearly
    identical (resized, recompressed, a little cropped or edited); best first. Deletes nothing."""
    filtered = _filters(**filters)
    _check_grid(grid, as_json)
    groups = _library(ctx).duplicates(list(paths), threshold=threshold, filters=filtered)
    if grid is not None:
        from phototag.contactsheet import group_tiles

        if _write_grid(grid, group_tiles(groups)):
            return
    if as_json:
        _json([group.as_dict() for group in groups])
        return
    if not groups:
        click.echo("no duplicates found", err=True)
    for group in groups:
        click.echo(f"{group.kind}: {len(group.photos)} photos")
        for photo in group.photos:
            size = f"{photo.width}x{photo.height}" if photo.width else ""
            click.echo(f"  {photo.score:6.3f}  {display(photo.path)}  {size}".rstrip())


@cli.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@grid_option
@click.pass_context
def tags(ctx: click.Context, image: Path, as_json: bool, grid: str | None) -> None:
    """A photo's tags with their probabilities, the likeliest main subject first."""
    _check_grid(grid, as_json)
    result = _library(ctx).tags(image)
    if grid is not None:
        from phototag.contactsheet import tag_tiles

        if _write_grid(grid, tag_tiles(result), cell=480, lines=8):
            return
    if as_json:
        _json(result.as_dict())
        return
    for tag in result.tags:
        click.echo(f"{tag.score:6.3f}  {tag.tag}")
    if not result.tags:
        click.echo(f"{display(image)}: no word is likely enough to tag it", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Catalog, model, counts, roots, and whether the search index is current."""
    info = _library(ctx).status()
    if as_json:
        _json(info)
        return
    keys = ("catalog", "model", "backend", "photos", "tagged", "errors", "pending", "missing",
            "unwritten")
    for key in keys:
        click.echo(f"{key:>9}: {info[key]}")
    tail = info["index_tail"]
    current = (
        "current" if info["index_current"] else f"{max(tail.values())} vectors searched exactly"
    )
    click.echo(f"{'index':>9}: {current}")
    for root in info["roots"]:
        click.echo(f"{'root':>9}: {display(root)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """Shipped and trained models (use one with --model NAME)."""
    rows = _library(ctx).models()
    if as_json:
        _json(rows)
        return
    if not rows:
        click.echo("no models found", err=True)
    for row in rows:
        mark = " (default)" if row["default"] else ""
        labels = f"  labels: {', '.join(row['labels'])}" if row["labels"] else ""
        click.echo(
            f"{row['name']}{mark}  {row['kind']}  {row['semantic_head']} head  "
            f"v{row['version']}{labels}"
        )


@cli.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_command(as_json: bool) -> None:
    """Installed plugins, their packages and hooks."""
    from dataclasses import asdict

    from phototag.plugins import plugin_info

    infos = plugin_info()
    if as_json:
        _json([asdict(info) for info in infos])
        return
    for info in infos:
        package = f"{info.package} {info.version}" if info.package else "(registered in code)"
        click.echo(f"{info.name:<14} {package:<28} {', '.join(info.hooks)}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--sidecar", is_flag=True, help="Remove them from XMP sidecars instead.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.pass_context
def untag(ctx: click.Context, paths: tuple[Path, ...], sidecar: bool, dry_run: bool) -> None:
    """Remove phototag's machine tags from photos (or sidecars) and the catalog."""
    library = _library(ctx)
    printer = EventPrinter(verbose=library.verbose, dry_run=dry_run)
    summary = library.untag(
        list(paths), mode="sidecar" if sidecar else "embed", dry_run=dry_run, on_event=printer
    )
    verb = "would change" if dry_run else "changed"
    click.echo(f"{verb} {summary.written} files, skipped {summary.skipped}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--token", default=None,
    help="Ask browsers for this token (one is generated for any host but localhost).",
)  # fmt: skip
@write_mode_options
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, open_browser: bool, token: str | None,
    no_write: bool, sidecar: bool,
) -> None:  # fmt: skip
    """A local web page to search, browse and correct the library."""
    from phototag.web.server import serve as run_server

    library = _library(ctx)
    run_server(
        library, host=host, port=port, token=token, open_browser=open_browser,
        write=_write_mode(library, no_write, sidecar), verbose=library.verbose, echo=click.echo,
    )  # fmt: skip


@cli.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def relocate(ctx: click.Context, old: Path, new: Path) -> None:
    """Point a library root that moved (OLD) at its new place (NEW), without re-embedding."""
    count = _library(ctx).relocate(old, new)
    click.echo(f"{count} photos now under {display(os.path.abspath(new))}")


@cli.command()
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Runs that changed files, newest first (undo one with 'phototag undo RUN')."""
    from dataclasses import asdict

    found = _library(ctx).runs(limit)
    if as_json:
        _json([asdict(run) for run in found])
        return
    if not found:
        click.echo("no runs have changed files yet", err=True)
    for run in found:
        import time

        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at))
        undone = f"  (undone by run {run.undone_by})" if run.undone_by else ""
        click.echo(f"{run.id:>5}  {when}  {run.command:<6} {run.mode or '':<7} "
                   f"{run.files} files{undone}")  # fmt: skip


@cli.command()
@click.argument("run", required=False, type=click.IntRange(1))
@click.option("--dry-run", is_flag=True, help="Show what would be restored; change nothing.")
@click.pass_context
def undo(ctx: click.Context, run: int | None, dry_run: bool) -> None:
    """Restore the keyword fields run RUN (default: the latest) changed in files."""
    library = _library(ctx)
    printer = EventPrinter(verbose=max(library.verbose, 1 if dry_run else 0), dry_run=dry_run)
    summary, undone = library.undo(run, dry_run=dry_run, on_event=printer)
    verb = "would restore" if dry_run else "restored"
    click.echo(f"run {undone}: {verb} {summary.written} files, could not {summary.skipped}")


_commands_loaded = False


def _load_plugin_commands() -> None:
    global _commands_loaded
    if _commands_loaded:
        return
    _commands_loaded = True
    from phototag.plugins import load_plugins, pm

    load_plugins()
    pm.hook.register_commands(cli=cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns library errors into ``error: ...`` and exit codes (1 failure, 2 usage)."""
    try:
        cli.main(args=argv, prog_name="phototag", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (UnknownWord, BadQuery, UnknownEngine) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except PhotoError as exc:
        click.echo(f"error: {display(exc.path)}: {exc.reason}", err=True)
        sys.exit(1)
    except PhototagError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except sqlite3.Error as exc:
        from phototag.catalog import describe

        click.echo(f"error: catalog: {describe(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
