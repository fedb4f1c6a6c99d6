"""The ``train`` command: click glue over ``train.py``.

Imported at every CLI start (commands are registered before parsing), so it imports
only click and light phototag modules; TensorFlow loads inside ``train`` when it runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from phototag.errors import PhototagError
from phototag.library import Library

INSTALL_HINT = "pip install 'phototag[tensorflow]'"


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


class _ClickReporter:
    """A progress bar per epoch on a terminal, and one summary line per epoch always."""

    def __init__(self, quiet: bool) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet

    @contextmanager
    def epoch_bar(self, epoch: int, epochs: int, steps: int) -> Iterator[Any]:
        with click.progressbar(
            length=steps, label=f"epoch {epoch}/{epochs}", file=sys.stderr,
            hidden=not self.tty or self.quiet, width=24,
        ) as bar:  # fmt: skip
            yield bar.update

    def epoch_done(self, log: Any, epochs: int) -> None:
        if self.quiet:
            return
        line = f"epoch {log.epoch:>3}/{epochs}  loss {log.loss:.4f}"
        if log.val_loss is not None:
            line += f"  val loss {log.val_loss:.4f}"
        if log.val_hit1 is not None:
            line += f"  val hit@1 {log.val_hit1:.2f}"
        click.echo(line, err=True)


@click.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Name of the new model (use it with --model NAME).")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1),
              help="Most epochs; early stopping usually ends sooner.")  # fmt: skip
@click.option("--val-split", default=0.2, show_default=True, type=click.FloatRange(0, 0.5),
              help="Share of each label's photos held out for early stopping.")  # fmt: skip
@click.option("--from-catalog", is_flag=True,
              help="Labels from catalogued photos' user keywords, not DATA_DIR.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a trained model of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def train(
    ctx: click.Context, data_dir: Path | None, name: str, epochs: int, val_split: float,
    from_catalog: bool, force: bool, as_json: bool,
) -> None:  # fmt: skip
    """Train a DeViSE head on labelled photos: DATA_DIR holds one folder per label
    (the folder name is the label word or phrase). Saves a model for --model NAME."""
    from phototag_tensorflow import train as training

    library = ctx.find_object(Library)
    try:
        _train(library, training, data_dir, name, epochs, val_split, from_catalog, force, as_json)
    except training.LabelError as exc:
        _fail(str(exc), 2)


def _train(
    library: Library, training: Any, data_dir: Path | None, name: str, epochs: int,
    val_split: float, from_catalog: bool, force: bool, as_json: bool,
) -> None:  # fmt: skip
    from phototag.scanner import display
    from phototag.words import WordVectors

    if (data_dir is None) == (not from_catalog):
        raise training.LabelError("give either DATA_DIR or --from-catalog")
    target = training.check_name(name, force=force)
    base = library.model
    if from_catalog:
        examples = training.collect_catalog(library.catalog)
        notes: list[str] = []
        source = f"catalog {library.catalog_path}"
    else:
        examples, notes = training.collect_folder(data_dir)
        source = f"folders in {data_dir}"
    vocab = base.file("tagging.vocabulary", "vocabulary.txt")
    vocab_words = vocab.read_text(encoding="utf-8").splitlines() if vocab.is_file() else []
    words = WordVectors(vocab_words)
    examples, more = training.check_labels(examples, words, strict=not from_catalog)
    for note in [*notes, *more]:
        click.echo(note, err=True)
    if not tensorflow_installed():
        raise PhototagError(f"phototag train needs tensorflow: {INSTALL_HINT}")
    quiet = as_json
    show = sys.stderr.isatty() and not quiet
    with click.progressbar(
        length=len(examples), label="features", file=sys.stderr, hidden=not show
    ) as bar:
        report = training.train(
            examples, base, target, words=words, epochs=epochs, val_split=val_split,
            reporter=_ClickReporter(quiet), source=source, strict=not from_catalog,
            on_skip=lambda p, r: click.echo(f"skipping {display(p)}: {r}", err=True),
            on_progress=bar.update,
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(_report_dict(report)))
        return
    m = report.metrics
    click.echo(
        f"trained '{name}' on {report.photos} photos of {len(report.labels)} labels "
        f"({report.train_photos} train, {report.val_photos} validation) in {report.seconds:.1f} s; "
        f"best epoch {report.best_epoch} of {report.epochs}"
    )
    if m is not None:
        click.echo(
            f"validation: hit@1 {m.hit1:.2f}, hit@5 {m.hit5:.2f} "
            f"among {len(report.labels)} labels; "
            f"hit@1 {m.vocab_hit1:.2f}, hit@5 {m.vocab_hit5:.2f} among {m.vocab_size} tag words"
        )
    click.echo(f"saved {display(report.path)}; use it with: phototag --model {name} ...")


def _report_dict(report: Any) -> dict[str, Any]:
    return {
        "model": report.path.name,
        "path": str(report.path),
        "labels": report.labels,
        "photos": report.photos,
        "train_photos": report.train_photos,
        "val_photos": report.val_photos,
        "epochs": report.epochs,
        "best_epoch": report.best_epoch,
        "validation": report.metrics.as_dict() if report.metrics else None,
        "seconds": round(report.seconds, 2),
        "feature_seconds": round(report.feature_seconds, 2),
    }
