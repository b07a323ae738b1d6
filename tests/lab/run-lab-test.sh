#!/bin/bash
# tests/lab/run-lab-test.sh — the QEMU lab test (issue 8 part 4), one command:
#   1. cargo build --release -p exitscope-cli
#   2. tests/lab/build.sh: a stock Debian kernel (cached under $LAB/debs) + busybox initramfs
#      with kvm/kvm-amd/9p modules and the exitscope binary with its shared libraries
#   3. tests/lab/run.sh: boot it under QEMU TCG (-cpu max, SVM+NPT emulated; never /dev/kvm),
#      run tests/lab/guest-job.sh in the guest: exitscope bench / record --graph /
#      record --events / run on real kvm_amd, results copied back over 9p
#   4. tests/lab/check.sh: exitscope report on the copied traces, the checks, the figures
# Prints PASS/FAIL/PENDING lines and a summary with the wall time. Prints "SKIP: <reason>" and
# exits 0 when the lab cannot be built here (no qemu and no apt, no network for the kernel
# package, kernel package not found, not x86_64); exits 1 on a real failure.
#
# Env: LAB (/tmp/exitscope-lab)  TIMEOUT (QEMU deadline, s; 420)  KPKG (kernel package)
#      NO_APT=1 (never call apt)  STEPS MIN_CYCLES REPEAT BUF_KB RUN_ARGS KUT_TESTS KUT_ARGS
#      (guest job knobs)  KUT_FLAT (kvm-unit-tests' vmexit.flat; default ../shared/kut/vmexit.flat)
#      EXITSCOPE_LAB_SKIP=1 (print SKIP and exit 0, e.g. for a quick CI run)
#      RESULTS (also copy the run directory there)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export LAB=${LAB:-/tmp/exitscope-lab}
export TIMEOUT=${TIMEOUT:-420}
T0=$(date +%s)
since() { echo $(( $(date +%s) - $1 )); }
skip() { echo "SKIP: lab test: $*"; exit 0; }
die() { echo "FAIL: lab test: $*"; echo "lab test: FAIL after $(since "$T0")s wall"; exit 1; }

[ -z "${EXITSCOPE_LAB_SKIP:-}" ] || skip "EXITSCOPE_LAB_SKIP is set"
[ "$(uname -m)" = x86_64 ] || skip "host is $(uname -m), the lab boots an x86_64 kernel"
if ! command -v jq >/dev/null; then
	if [ -z "${NO_APT:-}" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq; } >/dev/null 2>&1
	fi
	command -v jq >/dev/null || skip "jq is missing and cannot be installed (check.sh reads JSON with it)"
fi
if ! command -v qemu-system-x86_64 >/dev/null &&
	{ [ -n "${NO_APT:-}" ] || ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; }; then
	skip "qemu-system-x86_64 is missing and cannot be installed (no apt-get, not root, or NO_APT)"
fi

echo "== lab: cargo build --release -p exitscope-cli"
t=$(date +%s)
(cd "$REPO" && cargo build --release --quiet -p exitscope-cli) || die "cargo build --release failed"
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/exitscope
T_CARGO=$(since "$t")

echo "== lab: build kernel + initramfs under $LAB"
t=$(date +%s)
mkdir -p "$LAB" || skip "cannot create $LAB"
cold=warm; [ -d "$LAB/debs" ] && ls "$LAB"/debs/linux-image-*.deb >/dev/null 2>&1 || cold=cold
"$HERE/build.sh" "$BIN" 2>&1 | tee "$LAB/build.log" | sed 's/^/  /'
rc=${PIPESTATUS[0]}
case $rc in
0) ;;
3) skip "$(grep 'cannot build the lab' "$LAB/build.log" | tail -1 | sed 's/^build.sh: //')" ;;
*) die "tests/lab/build.sh failed with status $rc" ;;
esac
T_BUILD=$(since "$t")

echo "== lab: boot under QEMU TCG and run the guest job (timeout ${TIMEOUT}s)"
RUN=$LAB/runs/$(date +%Y%m%d-%H%M%S)
t=$(date +%s)
"$HERE/run.sh" "$RUN" 2>&1 | sed 's/^/  /'
qrc=${PIPESTATUS[0]}
T_QEMU=$(since "$t")
ln -sfn "$RUN" "$LAB/runs/latest"
sed 's/^/  guest: /' "$RUN/job.log" 2>/dev/null
[ -n "${RESULTS:-}" ] && { mkdir -p "$RESULTS" && cp -r "$RUN"/. "$RESULTS"/ && echo "  results copied to $RESULTS"; }
[ "$qrc" = 124 ] && die "QEMU did not power off within ${TIMEOUT}s (see $RUN/console.log, $RUN/job.log)"
[ "$qrc" = 0 ] || die "QEMU exited with status $qrc (see $RUN/console.log)"

echo "== lab: host-side checks of $RUN"
t=$(date +%s)
"$HERE/check.sh" "$RUN" "$BIN" | tee "$RUN/check.txt"
crc=${PIPESTATUS[0]}
T_CHECK=$(since "$t")

summary="cargo ${T_CARGO}s, lab build ${T_BUILD}s ($cold kernel cache), QEMU ${T_QEMU}s, checks ${T_CHECK}s"
echo "lab test: results in $RUN (check.txt, job.log, traces)"
if [ "$crc" = 0 ]; then
	echo "lab test: PASS in $(since "$T0")s wall ($summary); $(grep -c '^PENDING' "$RUN/check.txt") check(s) PENDING on unmerged commands"
	exit 0
fi
echo "lab test: FAIL in $(since "$T0")s wall ($summary)"
exit 1
