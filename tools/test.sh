#!/usr/bin/env bash
# The test command (README): installs phototag with its test, tensorflow and ray extras (the
# parity and training tests need TensorFlow, tests/test_ray.py a local Ray), then lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e '.[test,tensorflow,ray]'
python -m ruff check phototag plugins tests tools bench
python -m pytest -q "$@"
