#!/usr/bin/env bash
# The whole test suite: formatting, vet, race-enabled unit and integration
# tests, the kmsmock binary and moto_server as real KMS endpoints, MinIO as
# the S3 the s3crypt tests store objects in, the examples, and short fuzz
# runs. It starts every server it needs on 127.0.0.1 and stops them on exit,
# whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
	status=$?
	# MinIO logs only errors (--quiet); show them when the run failed.
	if [ "$status" -ne 0 ] && [ -s "$work/minio.log" ]; then
		echo "MinIO's log (last 50 lines of $work/minio.log):" >&2
		tail -n 50 "$work/minio.log" >&2
	fi
	# PostgreSQL (scripts/postgres.sh), if it was started.
	if declare -F postgres_stop >/dev/null; then postgres_stop || true; fi
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL: wait up to 60 s for anything to answer at URL.
wait_http() {
	for _ in $(seq 1 120); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.5
	done
	echo "no answer from $1 after 60 s" >&2
	return 1
}

step "toolchain"
go version
command -v moto_server >/dev/null || {
	echo "moto_server is not installed; it is part of the machine image (pip package moto[server])" >&2
	exit 1
}

command -v node >/dev/null && command -v npm >/dev/null || {
	echo "node and npm are needed for the AWS Encryption SDK for JavaScript interop tests" >&2
	exit 1
}

step "npm ci (the pinned AWS Encryption SDK for JavaScript)"
npm ci --prefix interop/js --no-audit --no-fund

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "not gofmt-formatted:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

# staticcheck at a pinned version, built once per machine into a cache
# outside the checkout and reused while the pin is unchanged.
step "staticcheck"
staticcheck_version=v0.8.2
staticcheck_bin="${PHICRYPT_TOOL_CACHE:-$HOME/.cache/phicrypt-tools}/staticcheck-$staticcheck_version"
if [ ! -x "$staticcheck_bin/staticcheck" ]; then
	GOBIN="$staticcheck_bin" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
"$staticcheck_bin/staticcheck" -version
"$staticcheck_bin/staticcheck" ./...

# MinIO at a pinned version, built once per machine into the same cache
# (the first build takes minutes; later runs reuse the binary).
step "MinIO"
minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
minio_bin="${PHICRYPT_TOOL_CACHE:-$HOME/.cache/phicrypt-tools}/minio-${minio_version##*-}"
if [ ! -x "$minio_bin/minio" ]; then
	GOBIN="$minio_bin" go install "github.com/minio/minio@$minio_version"
fi
echo "minio $minio_version at $minio_bin/minio"

step "start the kmsmock binary"
go build -o "$work/kmsmock" ./kmsmock/cmd/kmsmock
"$work/kmsmock" -addr 127.0.0.1:0 -log-level warn >"$work/kmsmock.out" 2>"$work/kmsmock.err" &
pids+=($!)
for _ in $(seq 1 100); do
	[ -s "$work/kmsmock.out" ] && break
	sleep 0.1
done
kmsmock_url=$(head -n1 "$work/kmsmock.out")
[ -n "$kmsmock_url" ] || { cat "$work/kmsmock.err" >&2; exit 1; }
echo "kmsmock at $kmsmock_url"

step "start moto_server"
moto_port=$(free_port)
# moto_server with its DynamoDB made linearizable (see the script): the
# DynamoDB store's two-process races need transactions that really are.
python3 scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$moto_port/" || { cat "$work/moto.log" >&2; exit 1; }
echo "moto_server at http://127.0.0.1:$moto_port"

# --- PostgreSQL for the SQL key-store tests (scripts/postgres.sh) ---
step "start PostgreSQL"
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
postgres_start # exports PHICRYPT_POSTGRES_URL; cleanup stops it
# --- end PostgreSQL ---

# --- MinIO, the S3 of the s3crypt, interop and example runs ---
step "start MinIO"
minio_port=$(free_port)
minio_console_port=$(free_port)
mkdir "$work/minio-data"
# Random root credentials, new each run (MinIO wants at least 8 characters).
minio_user=$(python3 -c 'import secrets; print("phicrypt-" + secrets.token_hex(8))')
minio_password=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
MINIO_ROOT_USER="$minio_user" MINIO_ROOT_PASSWORD="$minio_password" MINIO_UPDATE=off \
	"$minio_bin/minio" server --quiet --anonymous \
	--address "127.0.0.1:$minio_port" --console-address "127.0.0.1:$minio_console_port" \
	"$work/minio-data" >"$work/minio.log" 2>&1 &
minio_pid=$!
pids+=("$minio_pid")
minio_up=
for _ in $(seq 1 120); do
	if curl -sf -o /dev/null "http://127.0.0.1:$minio_port/minio/health/live"; then
		minio_up=1
		break
	fi
	kill -0 "$minio_pid" 2>/dev/null || break
	sleep 0.5
done
if [ -z "$minio_up" ]; then
	# The cleanup shows MinIO's log.
	if kill -0 "$minio_pid" 2>/dev/null; then
		echo "MinIO did not become live at http://127.0.0.1:$minio_port/minio/health/live within 60 s" >&2
	else
		echo "MinIO ($minio_bin/minio) exited before it became live" >&2
	fi
	exit 1
fi
echo "MinIO at http://127.0.0.1:$minio_port"
# internal/s3test reads these; exported, so every go test and example below
# stores its objects in this MinIO.
export PHICRYPT_S3_URL="http://127.0.0.1:$minio_port"
export PHICRYPT_S3_ACCESS_KEY="$minio_user"
export PHICRYPT_S3_SECRET_KEY="$minio_password"
# --- end MinIO ---

step "go test -race ./..."
PHICRYPT_FULL_SUITE=1 \
	PHICRYPT_KMSMOCK_URL="$kmsmock_url" \
	PHICRYPT_MOTO_URL="http://127.0.0.1:$moto_port" \
	go test -race -count=1 ./...

step "allocation tests, without the race detector's instrumentation"
go test -count=1 -run 'Alloc' ./...

step "streaming memory bound, without the race detector's overhead (1 GiB)"
PHICRYPT_FULL_SUITE=1 go test -count=1 -run '^TestStreamingMemoryIsBounded$' -v ./phicrypt/internal/memtest/ | grep -E 'peak RSS|^(ok|FAIL)'

step "S3 memory bound, without the race detector's overhead (1 GiB through MinIO)"
if ! PHICRYPT_FULL_SUITE=1 go test -count=1 -run '^TestS3MemoryIsBounded$' -v ./phicrypt/s3crypt/internal/memtest/ >"$work/s3mem.log" 2>&1; then
	cat "$work/s3mem.log" >&2
	exit 1
fi
grep -E 'peak RSS|moved|^ok' "$work/s3mem.log"

step "interop with the AWS Encryption SDK for JavaScript"
PHICRYPT_MOTO_URL="http://127.0.0.1:$moto_port" \
	go test -race -count=1 -tags interop ./interop/

# A nested module (its own go.mod), so the AWS SDK's dependencies stay out
# of phicrypt's. Its module download and build land in the default Go
# caches under $HOME and are reused by later runs on the same machine.
# Local directory mode (no package argument: the module is one package)
# streams the output, so the count of cross-checks shows in the log.
step "interop with the AWS Encryption SDK for Go (interop/goesdk)"
(cd interop/goesdk && PHICRYPT_FULL_SUITE=1 \
	PHICRYPT_MOTO_URL="http://127.0.0.1:$moto_port" \
	go test -race -count=1)

# Another nested module (Tink, the AWS Go ESDK and gonum/plot stay out of
# phicrypt's graph): phibench's cases and command. Every benchmark runs
# once so none can rot, the DynamoDB, PostgreSQL and S3 cases against the
# servers above (PostgreSQL's and MinIO's variables are exported already);
# phibench itself is timed by hand (README).
step "benchmarks (phibench; each case once)"
(cd benchmarks && go vet ./... &&
	PHICRYPT_FULL_SUITE=1 PHICRYPT_MOTO_URL="http://127.0.0.1:$moto_port" go test -count=1 ./... &&
	PHICRYPT_FULL_SUITE=1 PHICRYPT_MOTO_URL="http://127.0.0.1:$moto_port" go test -run '^$' -bench . -benchtime 1x ./...)

# A nested module with one dependency (sops's shamir package): our Shamir
# secret sharing against an independent implementation, both ways.
step "Shamir secret sharing against getsops/sops (internal/shamir/crosscheck)"
(cd internal/shamir/crosscheck && go vet ./... && go test -race -count=1 ./...)

step "quickstart"
go run ./examples/quickstart

step "s3objects example against MinIO"
go run ./examples/s3objects -bucket phicrypt-s3objects

step "fuzz (10 s per target; a failing input is saved under testdata/fuzz)"
# Go's fuzzing engine sometimes ends a run with "context deadline exceeded"
# when its time is up while a worker is slow to answer (a loaded machine),
# with no failing input: such a run is tried again, up to three runs in
# all. A real failure writes its input under testdata/fuzz and fails at
# once.
fuzz_once() {
	local out attempt
	out=$(mktemp)
	for attempt in 1 2 3; do
		if go test -run '^$' -fuzz "^${2}\$" -fuzztime 10s "$1" >"$out" 2>&1; then
			cat "$out"; rm -f "$out"; return 0
		fi
		cat "$out"
		if ! grep -q 'context deadline exceeded' "$out" || grep -q 'Failing input written' "$out"; then
			rm -f "$out"
			return 1
		fi
		echo "fuzz: $2 ended on the engine's deadline without a failing input (run $attempt of 3)"
	done
	rm -f "$out"
	return 1
}
for pkg in ./kmsmock/ ./phicrypt/ ./phicrypt/s3crypt/ ./fieldenc/ ./internal/siv/ ./internal/blind/ ./internal/shamir/ ./keyring/ ./audit/ ./custody/; do
	for target in $(go test -list 'Fuzz.*' "$pkg" | grep '^Fuzz'); do
		fuzz_once "$pkg" "$target"
	done
done

step "all green"
