#!/bin/sh
# benchratio.sh FILE NUM DEN [UNIT]: the ratio of two benchmarks' medians
# in one `go test -bench` output FILE (same run, so the same machine load),
# for the metric UNIT (ns/op by default; cpu-ns/op where reported).
#
#	go test ./fieldenc/ -run '^$' -bench . -benchmem -count 5 | tee bench.txt
#	scripts/benchratio.sh bench.txt BenchmarkSealStruct10Fields BenchmarkRawGCMSeal64x10Keys cpu-ns/op
set -eu
[ $# -ge 3 ] || { echo "usage: $0 FILE NUM DEN [UNIT]" >&2; exit 2; }
awk -v N="$2" -v D="$3" -v U="${4:-ns/op}" '
function val(   i) { for (i = 3; i <= NF; i++) if ($i == U) return $(i-1); return "" }
function median(s,   a, c, i, j, t) {
	c = split(s, a, " ")
	for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
}
{ name = $1; sub(/-[0-9]+$/, "", name); x = val() }
name == N && x != "" { num = num " " x; nn++ }
name == D && x != "" { den = den " " x; nd++ }
END {
	if (!nn || !nd) { print "benchratio: no " U " for " (nn ? D : N) > "/dev/stderr"; exit 1 }
	printf "%s / %s (%s, medians of %d and %d runs): %.3f\n", N, D, U, nn, nd, median(num) / median(den)
}' "$1"
