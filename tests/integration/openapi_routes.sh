#!/usr/bin/env bash
# openapi_routes.sh: docs/openapi.json documents exactly the routes the server serves.
# `pqota server routes --json` prints the server's route tables as a JSON array of
# {"methods": "GET,HEAD", "path": "/packages/{sha256}", "auth": "public"}; the set of
# (method, path) pairs in it must equal the set of operations in docs/openapi.json. A HEAD
# route counts as documented when the path documents GET; path parameters must carry the same
# names ({vin}, {ecu}, {id}, {sha256}). Also checked: each operation's x-pqota-auth is the
# route's auth, and each {name} in a path is declared as a path parameter.
. "$(dirname "$0")/lib.bash"

spec="$PQOTA_SRC/docs/openapi.json"
routes="$WORK/routes.json"
cmp="$WORK/compare.py"

cat >"$cmp" <<'EOF'
"""compare.py WHAT ROUTES_JSON OPENAPI_JSON: one check; prints what differs, exit 1 if any."""
import json
import re
import sys

HTTP = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
AUTH = ("public", "viewer", "operator", "admin", "vehicle", "any")


def load_routes(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list) or not data:
        raise ValueError("routes: not a non-empty JSON array")
    for i, r in enumerate(data):
        if not isinstance(r, dict) or set(r) != {"methods", "path", "auth"}:
            raise ValueError(f"routes[{i}]: not an object with methods, path, auth: {r!r}")
        if not isinstance(r["path"], str) or not r["path"].startswith("/"):
            raise ValueError(f"routes[{i}]: bad path {r['path']!r}")
        ms = r["methods"].split(",") if isinstance(r["methods"], str) else []
        if not ms or any(m.lower() not in HTTP for m in ms):
            raise ValueError(f"routes[{i}]: bad methods {r['methods']!r}")
        if r["auth"] not in AUTH:
            raise ValueError(f"routes[{i}]: bad auth {r['auth']!r}")
    served = {}
    for r in data:
        for m in r["methods"].split(","):
            key = (m.upper(), r["path"])
            # the router takes the first match: a later duplicate is never reached
            served.setdefault(key, r["auth"])
    return served


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("openapi") != "3.0.3":
        raise ValueError(f"openapi is {doc.get('openapi')!r}, not '3.0.3'")
    if not isinstance(doc.get("paths"), dict) or not doc["paths"]:
        raise ValueError("no paths")
    return doc


def operations(doc):
    ops = {}
    for p, item in doc["paths"].items():
        for m, o in item.items():
            if m in HTTP:
                ops[(m.upper(), p)] = o
    return ops


def show(title, pairs):
    for m, p in sorted(pairs, key=lambda x: (x[1], x[0])):
        print(f"     {title}: {m} {p}")


def main():
    what, routes_path, spec_path = sys.argv[1:4]
    try:
        served = load_routes(routes_path)
        doc = load_spec(spec_path)
    except (OSError, ValueError) as e:
        print(f"     {e}")
        return 1
    ops = operations(doc)
    bad = []
    if what == "format":
        print(f"     {len(served)} served (method, path) pairs, {len(ops)} documented operations")
        return 0
    if what == "served":  # every served route is documented
        for m, p in served:
            if (m, p) in ops or (m == "HEAD" and ("GET", p) in ops):
                continue
            bad.append((m, p))
        show("served but not in openapi.json", bad)
    elif what == "documented":  # every documented operation is served
        bad = [k for k in ops if k not in served]
        show("in openapi.json but not served", bad)
    elif what == "auth":
        for (m, p), o in ops.items():
            if (m, p) in served and o.get("x-pqota-auth") != served[(m, p)]:
                bad.append((m, p))
                print(f"     {m} {p}: x-pqota-auth {o.get('x-pqota-auth')!r}, "
                      f"the server says {served[(m, p)]!r}")
    elif what == "params":
        comp = doc.get("components", {}).get("parameters", {})
        for (m, p), o in ops.items():
            want = set(re.findall(r"\{([^}/]+)\}", p))
            got = set()
            for prm in doc["paths"][p].get("parameters", []) + o.get("parameters", []):
                if "$ref" in prm:
                    prm = comp.get(prm["$ref"].rsplit("/", 1)[-1], {})
                if prm.get("in") == "path":
                    got.add(prm.get("name"))
            if want != got:
                bad.append((m, p))
                print(f"     {m} {p}: path parameters {sorted(got)}, the path has {sorted(want)}")
    else:
        print(f"     unknown check {what}")
        return 2
    return 1 if bad else 0


sys.exit(main())
EOF

check "docs/openapi.json is well-formed JSON" python3 -m json.tool "$spec" /dev/null
rc=0
"$PQOTA" server routes --json >"$routes" 2>"$WORK/routes.err" || rc=$?
if [ "$rc" = 0 ]; then ok "pqota server routes --json"; else
	bad "pqota server routes --json: exit $rc"
	sed 's/^/     /' "$WORK/routes.err" | head -n 20
fi
check "routes are a JSON array of {methods, path, auth}; the spec is OpenAPI 3.0.3" \
	python3 "$cmp" format "$routes" "$spec"
check "every route the server serves is in openapi.json" python3 "$cmp" served "$routes" "$spec"
check "every operation in openapi.json is served" python3 "$cmp" documented "$routes" "$spec"
check "x-pqota-auth of each operation is the route's auth" python3 "$cmp" auth "$routes" "$spec"
check "path parameters are declared with the path's names" python3 "$cmp" params "$routes" "$spec"
finish
