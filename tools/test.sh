#!/usr/bin/env bash
# The test command (README): installs phototag with its test and tensorflow extras (the
# parity and training tests need TensorFlow), then lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e '.[test,tensorflow]'
python -m ruff check phototag plugins tests tools bench
python -m pytest -q "$@"
