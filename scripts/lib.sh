# scripts/lib.sh: shell helpers shared by scripts/bootstrap and scripts/env (sourced).

pqota_die() {
	echo "pqota: error: $*" >&2
	exit 1
}

# The cache directory for things built once per machine (outside any checkout).
pqota_cache_root() {
	echo "${PQOTA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pqota}"
}

# "3.5.7" -> success when >= 3.5
pqota_version_ok() {
	local maj min
	maj=${1%%.*}
	min=${1#*.}
	min=${min%%.*}
	[ -n "$maj" ] && [ -n "$min" ] || return 1
	[ "$maj" -gt 3 ] || { [ "$maj" -eq 3 ] && [ "$min" -ge 5 ]; }
}

pqota_openssl_bin() {
	if [ "$1" = /usr ]; then echo /usr/bin/openssl; else echo "$1/bin/openssl"; fi
}

# Prints the prefix of a usable OpenSSL >= 3.5 (its include/ and lib/), or fails.
# PQOTA_OPENSSL_PREFIX overrides the search.
pqota_openssl_prefix() {
	local v p
	if [ -n "${PQOTA_OPENSSL_PREFIX:-}" ]; then
		echo "$PQOTA_OPENSSL_PREFIX"
		return 0
	fi
	if command -v pkg-config >/dev/null 2>&1; then
		v=$(pkg-config --modversion openssl 2>/dev/null || true)
		if [ -n "$v" ] && pqota_version_ok "$v"; then
			echo /usr
			return 0
		fi
	fi
	p="$(pqota_cache_root)/openssl-current"
	if [ -x "$p/bin/openssl" ] && [ -e "$p/lib/libssl.so" ] && [ -d "$p/include/openssl" ]; then
		v=$("$p/bin/openssl" version 2>/dev/null | awk '{print $2}')
		if pqota_version_ok "$v"; then
			(cd "$p" && pwd -P)
			return 0
		fi
	fi
	return 1
}
