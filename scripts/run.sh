#!/usr/bin/env bash
# Starts gpt-load on SQLite (./data/gpt-load.db) at http://localhost:3001, building the web UI
# first when npm is available. Set AUTH_KEY (or put it in .env).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${AUTH_KEY:-}" ] && ! grep -qs '^AUTH_KEY=' .env; then
  echo "run.sh: set AUTH_KEY (the admin secret), e.g. AUTH_KEY=\$(openssl rand -hex 24) scripts/run.sh" >&2
  exit 2
fi
if command -v npm >/dev/null 2>&1 && [ -f ui/package.json ]; then
  # `--no-save`: as in scripts/test.sh, so that a run does not rewrite ui/package-lock.json.
  (cd ui && npm install --no-audit --no-fund --loglevel=error --no-save && npm run build --silent)
elif [ ! -f ui/dist/index.html ]; then
  # A release build refuses to embed no UI unless told so: without npm, serve the API only.
  echo "run.sh: npm is not installed, so the web UI is not built; starting without it" >&2
  export GPT_LOAD_ALLOW_NO_UI=1
fi
exec cargo run --release --bin gpt-load
