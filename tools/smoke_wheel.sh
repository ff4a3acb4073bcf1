#!/usr/bin/env bash
# Build the wheel, install it NON-editable into a fresh venv and use it from outside the source tree:
# catches files that only exist in a checkout (schemas, viewer assets, data) and undeclared imports.
# Usage: tools/smoke_wheel.sh [PYTHON]   (CI runs it after the test suite; takes well under a minute)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "smoke: $*"; }

step "build wheel"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" wheel -q --no-deps -w "$work/dist" "$repo" 2>&1 | grep -v '^WARNING: Location' || true
wheel="$(ls "$work"/dist/chapterx-*.whl)"
step "install $(basename "$wheel") (non-editable)"
"$work/venv/bin/pip" install -q "$wheel" 2>&1 | grep -v '^WARNING: Location' || true
cx="$work/venv/bin/chapterx"
py="$work/venv/bin/python"

cd "$work"   # outside the source tree: nothing may be found relative to the checkout
export HOME="$work/home" LOGS_DIR="$work/logs" TRACE_INDEX_PATH="$work/index.sqlite"
mkdir -p "$HOME"

step "installed package is not the checkout, and its schemas equal schemas/"
"$py" - "$repo" <<'EOF'
import filecmp, pathlib, sys
import chapterx, chapterx.paths as p
repo = pathlib.Path(sys.argv[1]).resolve()
pkg = pathlib.Path(chapterx.__file__).resolve().parent
assert repo not in pkg.parents, f"imported from the checkout: {pkg}"
assert p.SCHEMAS_DIR == pkg / "schemas", p.SCHEMAS_DIR
src = sorted(f.name for f in (repo / "schemas").glob("*.json"))
got = sorted(f.name for f in p.SCHEMAS_DIR.glob("*.json"))
assert src == got, (src, got)
_, mismatch, errors = filecmp.cmpfiles(repo / "schemas", p.SCHEMAS_DIR, src, shallow=False)
assert not mismatch and not errors, (mismatch, errors)
assert (pkg / "viewer" / "static" / "index.html").is_file() and (pkg / "data" / "prices.json").is_file()
print(f"  {len(got)} schemas identical; viewer assets and data present")
EOF

step "validate"
"$cx" validate "$repo/examples/config" >/dev/null
"$cx" validate "$repo/tests/fixtures/chapter2/harbour/ems" >/dev/null
step "config show"
"$cx" config show --config "$repo/examples/config/bots/aria.yaml" --json | "$py" -c 'import json,sys; json.load(sys.stdin)'
step "schema"
"$cx" schema chapterx-bot | "$py" -c 'import json,sys; assert json.load(sys.stdin)["$schema"]'
step "migrate --dry-run"
"$cx" migrate "$repo/tests/fixtures/chapter2/harbour/ems" --out "$work/migrated" --dry-run >/dev/null
test ! -e "$work/migrated/config" || { echo "dry run wrote files" >&2; exit 1; }
step "replay"
"$cx" replay "$repo/examples/replay/aria-mention.json" --json | "$py" -c 'import json,sys; json.load(sys.stdin)'
step "demo --no-serve (bundled examples from the wheel)"
"$cx" demo --no-serve --dir "$work/demo" >"$work/demo.out"
grep -q "aria (chapterx, chapterx rules): posted 1 message" "$work/demo.out"
grep -qE "traces: [0-9]+ \(chapter2: [1-9][0-9]*, chapterx: [1-9][0-9]*\)" "$work/demo.out"
step "traces list"
cp -r "$repo/tests/fixtures/traces/mini-logs/logs/." "$LOGS_DIR/"
"$cx" traces list --json | "$py" -c '
import json, sys
data = json.load(sys.stdin)
rows = data["traces"] if isinstance(data, dict) else data
assert rows, "no traces listed"
print(f"  {len(rows)} trace(s)")'

step "traces serve + /health"
"$cx" traces serve --port 0 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$work/serve.out" "$work/serve.err" | head -1 | cut -d: -f2- || true)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "server printed no URL" >&2; cat "$work/serve.err" >&2; exit 1; }
"$py" - "$url" <<'EOF'
import json, sys, time, urllib.request
for _ in range(50):
    try:
        with urllib.request.urlopen(sys.argv[1] + "/health", timeout=5) as r:
            body = r.read()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("no /health answer")
print("  /health:", body.decode()[:80])
with urllib.request.urlopen(sys.argv[1] + "/", timeout=5) as r:
    assert b"<html" in r.read().lower()
EOF
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
step "ok"
