#!/usr/bin/env bash
# Runs every test of gpt-load: Rust unit, crate and cross-process tests (real SQLite, PostgreSQL,
# MariaDB, Redis, the real binary, the vendors' Python SDKs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# The vendors' official SDKs, for the compatibility tests (a local virtualenv, once).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check openai anthropic google-genai
export GPT_LOAD_TEST_PYTHON="$PWD/.venv/bin/python"
# The web UI: install, type-check, unit tests, production build (the binary serves ui/dist).
# `npm install`, not `npm ci`: the registry reachable here serves only this platform's optional
# packages (rollup's and esbuild's binaries for other systems answer 404), so the lock file cannot
# list them and `npm ci` would refuse it as out of sync. `npm install` still follows the lock file;
# `--no-save` keeps it from writing the other platforms' optional packages into it.
npm --prefix ui install --no-audit --no-fund --loglevel=error --no-save
npm --prefix ui run lint
npm --prefix ui test
npm --prefix ui run build
# The build regenerates the UI's API types from master/openapi.json: the committed ones must be
# the current ones (a change of the document comes with its types).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
  && ! git diff --quiet -- ui/src/api/schema.d.ts; then
  echo "test.sh: ui/src/api/schema.d.ts is not the one master/openapi.json generates; commit it (npm --prefix ui run gen)" >&2
  git --no-pager diff --stat -- ui/src/api/schema.d.ts >&2
  exit 1
fi
# Cross-process tests start the binaries: build them first.
cargo build --bins
cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
# The UI end to end in Debian's Chromium against the real binary and the mock upstream.
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
npm --prefix ui run test:e2e
