#!/usr/bin/env bash
# Incremental native build for development: configure (picks up new native/**/*.cc files) and build, holding a
# lock so that several shells building at once do not clobber each other. `npm install` runs the full rebuild.
set -uo pipefail
cd "$(dirname "$0")/.."
exec 9>/tmp/mac-lm-native-build.lock
flock 9
log=$(mktemp)
if ! { npx node-gyp configure && npx node-gyp build; } >"$log" 2>&1; then
  grep -vE '^gyp info' "$log"
  rm -f "$log"
  exit 1
fi
grep -E 'warning|mac-lm native' "$log" || true
rm -f "$log"
