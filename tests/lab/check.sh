#!/bin/bash
# tests/lab/check.sh — host-side checks of one lab run (the directory tests/lab/run.sh filled
# from inside the guest). Runs `exitscope report` on the copied traces and asserts:
#   - the job ran, kvm_amd loaded, every step exited 0;
#   - bench: cpuid and inl_from_vmm ran at CPL0 on real kvm_amd, ~1 exit per iteration;
#   - graph:  the function_graph parses; CPUID exits found (with `report --exits`: classified
#             CPUID with before/run/after phases timed; without it: svm_vcpu_run and
#             cpuid_interception counted in the tree);
#   - events: kvm_exit/kvm_entry paired with per-reason latency, cpuid and io reasons present
#             (from `report --json`'s "exits.reasons": count, and the handling distribution
#             of kvm_exit -> kvm_entry; check.sh's awk pairing is printed beside it);
#   - run:    the `exitscope run cpuid` directory holds a bench result and a trace with CPUID exits;
#   - kut:    `exitscope run --kut vmexit.flat cpuid`: the guest's own lines from both boots, a
#             PASS exit, the bench figures, and report.json's CPUID exits (the traced boot's
#             iterations, up to 5 % more; the top reason after the VMM's own port I/O) with
#             the before/run/after phases timed;
#   - tracefs: every file snapshot before a step reads the same after it; no instances/exitscope-*.
# Prints PASS/FAIL/PENDING lines (PENDING = a check waiting for a command to be merged; the
# fallback check ran instead), then the figures. Exit 0 when nothing FAILed, 1 otherwise.
#
# Usage: tests/lab/check.sh RUN_DIR [EXITSCOPE_BIN]     (default target/release/exitscope)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
R=${1:?usage: check.sh RUN_DIR [EXITSCOPE_BIN]}
E=${2:-$REPO/target/release/exitscope}
command -v jq >/dev/null || { echo "FAIL: check.sh needs jq on the host"; exit 1; }
[ -x "$E" ] || { echo "FAIL: no exitscope binary at $E"; exit 1; }

fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pending() { echo "PENDING: $*"; }
figure() { FIGURES+=("$*"); }
FIGURES=()
mode() { cat "$R/$1.mode" 2>/dev/null || echo missing; }
# bench_json FILE: the bench JSON document in FILE (stdout of a command may carry other lines)
bench_json() { sed -n '/^{/,/^}/p' "$1" 2>/dev/null; }
has_exits() { "$E" report --help 2>/dev/null | grep -q -- '--exits'; }

# ---- the job -------------------------------------------------------------------------------
if [ "$(cat "$R/job.rc" 2>/dev/null)" = 0 ]; then pass "guest job finished (job.rc 0)"
else fail "guest job did not finish cleanly (job.rc: $(cat "$R/job.rc" 2>/dev/null || echo missing); see $R/job.log, $R/console.log)"; fi
if grep -q 'load_mod kvm_amd rc=0' "$R/kvm-load.txt" 2>/dev/null && grep -q '/dev/kvm' "$R/kvm-load.txt"; then
	pass "kvm_amd loaded in the guest ($(grep -o 'Nested Paging enabled' "$R/kvm-load.txt" | head -1), $(grep '^kvm_amd.nrips=' "$R/kvm-load.txt"))"
else fail "kvm_amd did not load in the guest (see $R/kvm-load.txt)"; fi
for s in bench graph events run kut; do
	[ -f "$R/$s.cmd" ] || continue
	rc=$(cat "$R/$s.rc" 2>/dev/null || echo missing)
	if [ "$rc" = 0 ]; then pass "step $s exited 0 ($(mode $s))"
	else fail "step $s exited $rc ($(mode $s)); stderr: $(head -c 400 "$R/$s.stderr" 2>/dev/null)"; fi
	[ "$(mode $s)" = fallback ] && pending "step $s ran its by-hand tracefs FALLBACK (the exitscope command is not merged in this build)"
done

# ---- bench (untraced) ----------------------------------------------------------------------
# check_bench FILE LABEL TEST...: every TEST ok at CPL0 with >= 0.9 exits per iteration
check_bench() {
	f=$1 label=$2; shift 2
	doc=$(bench_json "$f")
	if ! echo "$doc" | jq -e . >/dev/null 2>&1; then fail "$label: no bench JSON in $f"; return; fi
	for t in "$@"; do
		row=$(echo "$doc" | jq -c --arg t "$t" '.results[] | select(.test == $t)')
		if [ -z "$row" ]; then fail "$label: no result for $t"; continue; fi
		st=$(echo "$row" | jq -r .status) cpl=$(echo "$row" | jq -r .cpl)
		epi=$(echo "$row" | jq -r '.exits_per_iteration // 0')
		line=$(echo "$row" | jq -r '"\(.test): \(.cycles_median // 0 | floor) cycles = \(.ns_median // 0 | . / 1000 | floor) us per iteration, \(.exits_per_iteration) exits/iter, \(.iterations) iterations"')
		if [ "$st" = ok ] && [ "$cpl" = 0 ] && awk -v e="$epi" 'BEGIN{exit !(e >= 0.9)}'; then
			pass "$label: $line (cpl0, $(echo "$doc" | jq -r '.host.kvm_flavour'))"
			figure "$label: $line"
		else fail "$label: $t status=$st cpl=$cpl exits/iter=$epi ($(echo "$row" | jq -r '.reason // ""'))"; fi
	done
}
[ -f "$R/bench.cmd" ] && check_bench "$R/bench.json" "bench (untraced)" cpuid inl_from_vmm

# ---- graph ---------------------------------------------------------------------------------
# flat_calls JSON FUNC: calls of FUNC in a report JSON (0 when absent)
flat_calls() { echo "$1" | jq -r --arg f "$2" '[.flat[] | select(.function == $f) | .calls] | add // 0'; }
flat_mean() { echo "$1" | jq -r --arg f "$2" '[.flat[] | select(.function == $f) | .mean_ns] | add // 0'; }
# check_graph TRACE BENCHFILE LABEL
check_graph() {
	trace=$1 benchf=$2 label=$3
	[ -s "$trace" ] || { fail "$label: no trace $trace"; return; }
	if ! js=$("$E" report --json "$trace" 2>"$R/check-report.stderr"); then
		fail "$label: exitscope report --json $trace failed: $(head -c 400 "$R/check-report.stderr")"; return
	fi
	roots=$(echo "$js" | jq -r .roots) errs=$(echo "$js" | jq -r .diagnostic_counts.errors)
	warns=$(echo "$js" | jq -r .diagnostic_counts.warnings)
	rootf=$(echo "$js" | jq -r '[.tree[].function] | unique | join(",")')
	runs=$(flat_calls "$js" svm_vcpu_run)
	# the CPUID handler: cpuid_interception (kvm_amd) is inlined on Debian 6.1; kvm_emulate_cpuid is not
	cpuids=$(flat_calls "$js" cpuid_interception) cpuh=cpuid_interception
	[ "$cpuids" -gt 0 ] || { cpuids=$(flat_calls "$js" kvm_emulate_cpuid); cpuh=kvm_emulate_cpuid; }
	iters=$(bench_json "$benchf" | jq -r '[.results[] | select(.test == "cpuid") | .iterations] | add // 0' 2>/dev/null)
	iters=${iters:-0}
	if [ "$roots" -gt 0 ] && [ "$errs" = 0 ]; then
		pass "$label: $(wc -c < "$trace") bytes parse: $roots roots ($rootf), 0 unreadable lines, $warns warnings"
	else fail "$label: roots=$roots unreadable lines=$errs"; fi
	if [ "$cpuids" -ge "$iters" ] && [ "$iters" -gt 0 ] && [ "$runs" -ge "$cpuids" ]; then
		pass "$label: $runs svm_vcpu_run (exits), $cpuids $cpuh for $iters traced cpuid iterations"
	else fail "$label: svm_vcpu_run=$runs $cpuh=$cpuids, traced cpuid iterations=$iters"; fi
	figure "$label: $runs exits in $roots KVM_RUN roots ($rootf); svm_vcpu_run mean $(flat_mean "$js" svm_vcpu_run) ns, svm_handle_exit mean $(flat_mean "$js" svm_handle_exit) ns, $cpuh mean $(flat_mean "$js" $cpuh) ns (TCG)"
	if has_exits; then
		if ! xs=$("$E" report --exits --json "$trace" 2>>"$R/check-report.stderr"); then
			fail "$label: exitscope report --exits --json failed"; return
		fi
		c=$(echo "$xs" | jq -c '.exits.reasons[] | select(.reason == "CPUID")')
		if [ -n "$c" ] && echo "$c" | jq -e --argjson n "$iters" \
			'def timed(d): d.count // d.timed // 0; .count >= $n and timed(.before) > 0 and timed(.run) > 0 and timed(.after) > 0 and .before.mean_ns != null and .run.mean_ns != null and .after.mean_ns != null' >/dev/null; then
			p=$(echo "$c" | jq -r '"\(.count) CPUID exits: total mean \(.total.mean_ns) ns = before \(.before.mean_ns) + run \(.run.mean_ns) + after \(.after.mean_ns) + other \(.other.mean_ns // 0) ns"')
			pass "$label: --exits classifies $p"
			figure "$label: --exits: $(echo "$xs" | jq -r '.exits.exits') exits; $p"
			figure "$label: --exits reasons: $(echo "$xs" | jq -r '[.exits.reasons[] | "\(.reason)=\(.count)"] | join(" ")')"
		else fail "$label: --exits has no CPUID row with ${iters}+ exits and three timed phases: $(echo "$xs" | jq -c '.exits.reasons | map({reason, count})')"; fi
	else
		pending "$label: CPUID exits classified with three phases (needs \`exitscope report --exits\`; this build lacks it)"
	fi
}
[ -f "$R/graph.cmd" ] && { check_graph "$R/graph.txt" "$R/graph-bench.json" "graph"; check_bench "$R/graph-bench.json" "graph (traced bench)" cpuid; }
[ -f "$R/graph.meta" ] && figure "graph root: $(grep '^root:' "$R/graph.meta" | cut -d' ' -f2) (requested $(grep '^requested:' "$R/graph.meta" | cut -d' ' -f2))"

# ---- events --------------------------------------------------------------------------------
is_cpuid() { jq -r 'select((.reason | ascii_downcase) == "cpuid")'; }
# pair_events TRACE: per reason "reason count paired mean_ns min_ns max_ns", pairing each
# kvm_exit with the next kvm_entry of the same thread (FALLBACK until report pairs them)
pair_events() {
	awk '
	function ts(   m) { if (match($0, /[0-9]+\.[0-9]+: kvm_(exit|entry):/)) { m = substr($0, RSTART, RLENGTH); sub(/:.*/, "", m); return m } return -1 }
	/^#/ { next }
	/ kvm_exit: / {
		task = $1; t = ts(); r = $0; sub(/.* reason /, "", r); sub(/ rip 0x.*/, "", r)
		if (task in open) unpaired++
		open[task] = t; why[task] = r; count[r]++; next
	}
	/ kvm_entry: / {
		task = $1; t = ts()
		if (!(task in open)) next
		r = why[task]; d = (t - open[task]) * 1e9; delete open[task]
		paired[r]++; sum[r] += d
		if (!(r in mn) || d < mn[r]) mn[r] = d
		if (d > mx[r]) mx[r] = d
	}
	END { for (r in count) printf "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\n", r, count[r], paired[r], paired[r] ? sum[r] / paired[r] : 0, mn[r], mx[r] }
	' "$1" | sort -t"$(printf '\t')" -k2,2nr
}
check_events() {
	trace=$1 benchf=$2 label=$3
	[ -s "$trace" ] || { fail "$label: no trace $trace"; return; }
	if ! js=$("$E" report --json "$trace" 2>"$R/check-report.stderr"); then
		fail "$label: exitscope report --json $trace failed: $(head -c 400 "$R/check-report.stderr")"; return
	fi
	recs=$(echo "$js" | jq -r '[.inputs[].records] | add') errs=$(echo "$js" | jq -r .diagnostic_counts.errors)
	nexit=$(grep -c ' kvm_exit: ' "$trace") nentry=$(grep -c ' kvm_entry: ' "$trace")
	if [ "$errs" = 0 ] && [ "$recs" -ge $((nexit + nentry)) ] && [ "$nexit" -gt 0 ]; then
		pass "$label: $(wc -c < "$trace") bytes parse: $recs event records, 0 unreadable lines ($nexit kvm_exit, $nentry kvm_entry)"
	else fail "$label: records=$recs unreadable=$errs kvm_exit=$nexit kvm_entry=$nentry"; fi
	figure "$label: events $(grep -v '^#' "$trace" | grep -o ' kvm_[a-z_]*: ' | sort | uniq -c | awk '{printf "%s%s=%d", sep, $2, $1; sep=" "}' | tr -d ':')"
	iters_c=$(bench_json "$benchf" | jq -r '[.results[] | select(.test == "cpuid") | .iterations] | add // 0' 2>/dev/null)
	iters_i=$(bench_json "$benchf" | jq -r '[.results[] | select(.test == "inl_from_vmm") | .iterations] | add // 0' 2>/dev/null)
	ev=$(echo "$js" | jq -c '.exits // empty')
	if [ -n "$ev" ]; then
		rows=$(echo "$ev" | jq -r '.reasons[] | "\(.reason)\t\(.count)\t\(.handling.count // 0)\t\(.handling.mean_ns)\t\(.handling.min_ns)\t\(.handling.max_ns)"')
		src="report --json exits.reasons"
		# exitscope's pairing against check.sh's own (an exit pairs with the next kvm_entry of its
		# thread): the same number of exits per reason.
		mine=$(pair_events "$trace" | awk -F'\t' '{n[tolower($1)] += $2} END {for (r in n) print r, n[r]}' | sort)
		theirs=$(echo "$rows" | awk -F'\t' '{print tolower($1), $2}' | sort)
		tm=$(echo "$mine" | awk '{s += $2} END {print s + 0}') tt=$(echo "$theirs" | awk '{s += $2} END {print s + 0}')
		if [ "$tm" = "$tt" ] && [ "$tt" -gt 0 ]; then
			pass "$label: exitscope's per-reason exits add up to check.sh's own pairing ($tt): $(echo $theirs) vs raw $(echo $mine)"
		else fail "$label: exitscope counts $tt exits ($(echo $theirs)), check.sh's pairing $tm ($(echo $mine))"; fi
	else
		fail "$label: exitscope report --json has no exits section"
		rows=$(pair_events "$trace")
		src="check.sh pairing"
	fi
	# a reason row: reason count paired mean min max (tab-separated)
	row_of() { echo "$rows" | awk -F'\t' -v want="$1" 'BEGIN{n=split(want, w, "|")} {r=tolower($1); for (i=1;i<=n;i++) if (r==w[i]) {print; exit}}'; }
	for spec in "CPUID:cpuid:$iters_c" "IOIO:io|ioio|exit_ioio|io_instruction:$iters_i"; do
		name=${spec%%:*} rest=${spec#*:}; alts=${rest%%:*} need=${rest##*:}
		row=$(row_of "$alts")
		IFS=$'\t' read -r rr cnt pr mean mn mx <<< "$row"
		if [ -n "$row" ] && [ "$cnt" -ge "${need:-1}" ] && [ "$pr" -gt 0 ] && [ "$mean" != null ] && [ "${mean%.*}" -gt 0 ]; then
			pass "$label: $name exits paired with latency ($src): reason '$rr' $cnt exits ($pr paired) for $need iterations, mean $mean ns, min $mn, max $mx"
		else fail "$label: $name reason missing or unpaired ($src): [$row], needed ${need:-1} exits"; fi
	done
	figure "$label: per-reason kvm_exit->kvm_entry latency under TCG ($src):"
	while IFS=$'\t' read -r rr cnt pr mean mn mx; do
		[ -n "$rr" ] && figure "$(printf '    %-12s %5s exits %5s paired  mean %9s ns  min %9s  max %9s' "$rr" "$cnt" "$pr" "$mean" "$mn" "$mx")"
	done <<< "$rows"
}
[ -f "$R/events.cmd" ] && { check_events "$R/events.txt" "$R/events-bench.json" "events"; check_bench "$R/events-bench.json" "events (traced bench)" cpuid inl_from_vmm; }

# ---- run -----------------------------------------------------------------------------------
if [ -f "$R/run.cmd" ]; then
	D=$R/run-cpuid
	benchf='' tracef=''
	# `exitscope run -o DIR` names its files: trace.dat (trace.txt before issue 15), bench.json
	# (untraced), traced-bench.json,
	# report.json, report.html.
	[ -f "$D/bench.json" ] && benchf=$D/bench.json
	[ -f "$D/trace.txt" ] && tracef=$D/trace.txt
	[ -f "$D/trace.dat" ] && tracef=$D/trace.dat
	for f in $(find "$D" -type f ! -name '*.html' 2>/dev/null | sort); do
		if jq -e '.results' "$f" >/dev/null 2>&1; then [ -n "$benchf" ] || benchf=$f
		elif jq -e . "$f" >/dev/null 2>&1; then :
		elif "$E" report --json "$f" 2>/dev/null | jq -e '.roots > 0' >/dev/null 2>&1; then [ -n "$tracef" ] || tracef=$f
		fi
	done
	if [ -n "$benchf" ]; then check_bench "$benchf" "run (${benchf#"$R/"})" cpuid
	else fail "run: no bench JSON (a file with \"results\") in $D: $(cd "$D" 2>/dev/null && echo *)"; fi
	if [ -n "$tracef" ]; then
		tb=$benchf; [ -f "$D/traced-bench.json" ] && tb=$D/traced-bench.json
		check_graph "$tracef" "$tb" "run (${tracef#"$R/"})"
	else fail "run: no function_graph trace with roots in $D: $(cd "$D" 2>/dev/null && echo *)"; fi
fi

# ---- kut: kvm-unit-tests' vmexit.flat, traced (issue 14 item 4) ---------------------------
[ -f "$R/kut.skipped" ] && echo "SKIP: step kut: $(cat "$R/kut.skipped")"
if [ -f "$R/kut.cmd" ]; then
	D=$R/run-kut out=$R/kut.stdout
	# KUT_TESTS is cpuid by default; the checks below are about cpuid
	lines=$(grep -E '^cpuid [0-9]+$' "$out" 2>/dev/null)
	if [ "$(echo "$lines" | grep -c .)" = 2 ] && [ "$(grep -c 'QEMU status 1: PASS' "$out")" = 2 ]; then
		pass "kut: the guest printed '$(echo "$lines" | head -1)' (untraced boot) and '$(echo "$lines" | tail -1)' (traced boot), both exited PASS through isa-debug-exit"
	else fail "kut: expected two 'cpuid N' guest lines and two PASS exits in $out: $(grep -E '^(cpuid|#)' "$out" 2>/dev/null | head -8 | tr '\n' '|')"; fi
	ub=$D/bench.json tb=$D/traced-bench.json rj=$D/report.json
	if jq -e '.source == "kvm-unit-tests" and (.results[] | select(.test == "cpuid") | .status == "ok")' "$ub" >/dev/null 2>&1; then
		u=$(jq -r '.results[] | select(.test == "cpuid") | "cpuid \(.cycles_median) cycles/iter (the guest'"'"'s own), \(.exits_per_iteration) exits/iter (KVM stats), last round \(.iterations) iterations"' "$ub")
		pass "kut: untraced bench.json: $u on kvm flavour $(jq -r .host.kvm_flavour "$ub")"
		figure "kut untraced: $u"
	else fail "kut: no ok cpuid result with source kvm-unit-tests in $ub"; fi
	iters=$(jq -r '[.kut.boots[0].tests[] | select(.name == "cpuid") | .window_iterations] | first // 0' "$tb" 2>/dev/null)
	iters=${iters:-0}
	figure "kut traced: $(jq -r '.results[] | select(.test == "cpuid") | "cpuid \(.cycles_median) cycles/iter"' "$tb" 2>/dev/null), $iters iterations (2N-64)"
	if grep -q 'recorded function_graph' "$out"; then pass "kut: $(grep -o 'recorded function_graph[^)]*)' "$out" | head -1)"
	else fail "kut: not a function_graph recording: $(grep '^# exitscope run' "$out")"; fi
	c=$(jq -c '.exits.reasons[] | select(.reason == "CPUID")' "$rj" 2>/dev/null)
	all=$(jq -r '.exits.exits // 0' "$rj" 2>/dev/null)
	# the most frequent reason other than IO (the VMM's console polling and PCI probing,
	# which a function graph cannot tell from the test's own port I/O)
	top=$(jq -r '[.exits.reasons[] | select(.reason != "IO")] | max_by(.count) | .reason' "$rj" 2>/dev/null)
	if [ -n "$c" ] && [ "$iters" -gt 0 ] && [ "$top" = CPUID ] && echo "$c" | jq -e --argjson n "$iters" \
		'def timed(d): d.count // d.timed // 0; .count >= $n and .count <= $n * 1.05 + 16 and timed(.before) > 0 and timed(.run) > 0 and timed(.after) > 0 and .before.mean_ns != null and .run.mean_ns != null and .after.mean_ns != null' >/dev/null; then
		p=$(echo "$c" | jq -r '"\(.count) CPUID exits: total mean \(.total.mean_ns) ns = before \(.before.mean_ns) + run \(.run.mean_ns) + after \(.after.mean_ns) + other \(.other.mean_ns // 0) ns"')
		pass "kut: report.json classifies $p, for $iters guest iterations, of $all exits ($(jq -r .exits.source "$rj"))"
		figure "kut report.json: $p"
		figure "kut report.json reasons: $(jq -r '[.exits.reasons[] | "\(.reason)=\(.count)"] | join(" ")' "$rj"); harness (console/firmware ports) $(jq -r .exits.harness_exits "$rj")"
		figure "kut traced boot: exits the VMM served in userspace $(jq -c '.kut.boots[0].userspace_exits' "$tb") (the IO row above, less the guest's own in-kernel port I/O)"
	else fail "kut: report.json has no CPUID row with $iters..5% more exits (the top reason besides IO, not $top) and three timed phases: $(jq -c '.exits.reasons | map({reason, count})' "$rj" 2>/dev/null | head -c 400)"; fi
fi

# ---- tracefs restored ----------------------------------------------------------------------
# buffer_size_kb is compared apart: "N (expanded: M)" is a buffer not yet allocated at its
# boot size M; writing M back reads M rounded up to whole ring-buffer pages (4080 data bytes
# each: 1408 -> 1410), so sizes within 4 KB are the same size.
norm() { grep -v '^buffer_size_kb:' "$1"; }
bufkb() { sed -nE 's/^buffer_size_kb: ([0-9]+ \(expanded: )?([0-9]+).*/\2/p' "$1"; }
for s in bench graph events run kut; do
	b=$R/tracefs-before-$s.txt a=$R/tracefs-after-$s.txt
	[ -f "$b" ] || continue
	[ -f "$a" ] || { fail "tracefs: no snapshot after step $s"; continue; }
	kb=$(bufkb "$b") ka=$(bufkb "$a")
	if d=$(diff <(norm "$b") <(norm "$a")) && [ -n "$kb" ] && [ -n "$ka" ] &&
		[ $((ka - kb)) -le 4 ] && [ $((kb - ka)) -le 4 ]; then
		note=; cmp -s "$b" "$a" || note=", buffer_size_kb '$(grep '^buffer_size_kb:' "$b" | cut -d' ' -f2-)' -> '$(grep '^buffer_size_kb:' "$a" | cut -d' ' -f2-)' (same size, page-rounded)"
		pass "tracefs restored after step $s ($(mode $s)): $(wc -l < "$a") files/options identical$note"
	else fail "tracefs not restored after step $s ($(mode $s)): $(echo "$d" | tr '\n' ' ' | head -c 600) buffer_size_kb $kb -> $ka"; fi
	if grep -q '^instances:.*exitscope-' "$a"; then fail "tracefs: $(grep '^instances:' "$a") left after step $s"; fi
done

echo
echo "== figures (QEMU TCG, nested kvm_amd; times are emulator times, 50-100x hardware)"
for f in "${FIGURES[@]}"; do echo "  $f"; done
echo
if [ "$fails" = 0 ]; then echo "check.sh: all checks passed ($(grep -c . <<< "$(printf '%s\n' "${FIGURES[@]}")") figures)"; exit 0
else echo "check.sh: $fails check(s) FAILED"; exit 1; fi
