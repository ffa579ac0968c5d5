#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the SQL key-store tests.
#
# From a script (scripts/test.sh does this):
#
#	source scripts/postgres.sh
#	postgres_start      # exports PHICRYPT_POSTGRES_URL
#	...
#	postgres_stop       # stops the server and deletes the cluster
#
# By hand:
#
#	eval "$(scripts/postgres.sh start)"   # prints the exports, including PHICRYPT_PG_DIR
#	go test ./keyring/
#	scripts/postgres.sh stop "$PHICRYPT_PG_DIR"
#
# Installs the Debian package postgresql if initdb and pg_ctl are missing.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# package's 'postgres' user. The server listens on 127.0.0.1 only, on a free
# port, with password authentication; durability settings are off, since
# the cluster is deleted afterwards.

# _pg_bindir prints the directory of the newest initdb and pg_ctl.
_pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(readlink -f "$(command -v initdb)")"
		return 0
	fi
	return 1
}

_pg_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "postgres.sh: PostgreSQL is not installed and only root can install it (apt-get install postgresql)" >&2
		return 1
	fi
	echo "postgres.sh: installing the Debian package postgresql" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
}

# _pg_as_owner runs a command as the cluster's owner.
_pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

_pg_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# postgres_start starts the cluster and exports PHICRYPT_POSTGRES_URL and
# PHICRYPT_PG_DIR (the cluster's directory, for postgres_stop).
postgres_start() {
	local bindir dir password port attempt
	bindir=$(_pg_bindir) || { _pg_install && bindir=$(_pg_bindir); } || {
		echo "postgres.sh: no initdb and pg_ctl after installing postgresql" >&2
		return 1
	}
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "postgres.sh: running as root and there is no 'postgres' user to own the cluster" >&2
		return 1
	fi
	# Not under the caller's work directory: as root that is private to
	# root, and the postgres user must reach its cluster.
	dir=$(mktemp -d /tmp/phicrypt-pg.XXXXXX)
	chmod 0755 "$dir"
	password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$password" >"$dir/pwfile"
	chmod 0600 "$dir/pwfile"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
	_pg_as_owner "$bindir/initdb" -D "$dir/data" -U phicrypt --pwfile="$dir/pwfile" \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		rm -rf "$dir"
		return 1
	}
	rm -f "$dir/pwfile"
	# A free port can be taken between choosing and binding it: try again.
	for attempt in 1 2 3; do
		port=$(_pg_free_port)
		if _pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
			"-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
			>"$dir/pg_ctl.log" 2>&1; then
			break
		fi
		if [ "$attempt" -eq 3 ]; then
			cat "$dir/pg_ctl.log" "$dir/server.log" >&2
			rm -rf "$dir"
			return 1
		fi
	done
	export PHICRYPT_PG_DIR="$dir"
	export PHICRYPT_PG_BINDIR="$bindir"
	PGPASSWORD="$password" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U phicrypt phicrypt || {
		postgres_stop
		return 1
	}
	export PHICRYPT_POSTGRES_URL="postgres://phicrypt:$password@127.0.0.1:$port/phicrypt?sslmode=disable"
	echo "postgres.sh: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') at 127.0.0.1:$port (cluster in $dir)" >&2
}

# postgres_stop stops the cluster postgres_start started (or the one in the
# directory given) and deletes it. It is safe to call twice.
postgres_stop() {
	local dir=${1:-${PHICRYPT_PG_DIR:-}}
	local bindir=${PHICRYPT_PG_BINDIR:-}
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	[ -n "$bindir" ] || bindir=$(_pg_bindir) || return 1
	if [ -f "$dir/data/postmaster.pid" ]; then
		_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	if [ "$dir" = "${PHICRYPT_PG_DIR:-}" ]; then
		unset PHICRYPT_PG_DIR PHICRYPT_POSTGRES_URL
	fi
}

# Run directly: start or stop by hand.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case "${1:-}" in
	start)
		postgres_start
		printf 'export PHICRYPT_POSTGRES_URL=%q PHICRYPT_PG_DIR=%q\n' "$PHICRYPT_POSTGRES_URL" "$PHICRYPT_PG_DIR"
		;;
	stop)
		postgres_stop "${2:?usage: postgres.sh stop DIR}"
		;;
	*)
		echo "usage: $0 start | stop DIR" >&2
		exit 2
		;;
	esac
fi
