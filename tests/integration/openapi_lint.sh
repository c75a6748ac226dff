#!/usr/bin/env bash
# openapi_lint.sh: docs/openapi.json passes a standard OpenAPI linter, Redocly CLI's
# `redocly lint` with its recommended rules (tests/openapi: pinned by package-lock.json,
# installed by scripts/bootstrap --with browser), with no error. Skipped (77) only when node
# cannot be found; with node but without the linter the test fails (run the bootstrap).
# Also checks that the linter is not blind: a copy of the file with an operation whose path
# parameter is undeclared must fail.
. "$(dirname "$0")/lib.bash"

dir="$PQOTA_SRC/tests/openapi"
redocly="$dir/node_modules/.bin/redocly"
command -v node >/dev/null 2>&1 || { echo "skip: node not found (scripts/bootstrap --with browser)"; exit 77; }
[ -x "$redocly" ] || { bad "no $redocly: run scripts/bootstrap --with browser (npm ci in tests/openapi)"; finish; }

lint() { # lint FILE: redocly's summary in $WORK/lint.txt, its exit status
	(cd "$dir" && NO_COLOR=1 REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		"$redocly" lint --config redocly.yaml --format=stylish "$1") >"$WORK/lint.txt" 2>&1
}
rc=0
lint "$PQOTA_SRC/docs/openapi.json" || rc=$?
check "redocly lint docs/openapi.json: exit 0 (got $rc)" test "$rc" = 0
check "...no error" sh -c "! grep -qE '^ *[0-9]+:[0-9]+ +error' '$WORK/lint.txt'"
[ "$rc" = 0 ] || sed 's/^/     /' "$WORK/lint.txt" | grep -vE '^ *$' | head -n 40
grep -E ' warning ' "$WORK/lint.txt" | sed 's/^/     /' || true

python3 - "$PQOTA_SRC/docs/openapi.json" "$WORK/broken.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["paths"]["/lint-probe/{undeclared}"] = {"get": {"operationId": "lintProbe", "summary": "x",
    "security": [], "responses": {"200": {"description": "ok"}}}}
json.dump(d, open(sys.argv[2], "w"))
PY
rc=0
lint "$WORK/broken.json" || rc=$?
check "...and fails a copy with an undeclared path parameter (exit $rc)" test "$rc" != 0
finish
