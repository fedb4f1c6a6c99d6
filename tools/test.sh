#!/usr/bin/env bash
# The test command (README): installs phototag with its test extras, then lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e '.[test]'
python -m ruff check phototag plugins tests tools bench
python -m pytest -q "$@"
