#!/bin/bash
# tests/lab/build.sh — assemble the lab: a stock Debian kernel + a busybox initramfs holding
# KVM (kvm.ko, kvm-amd.ko), 9p/virtio modules and the exitscope binary (with its shared
# libraries and the dynamic loader, found by ldd, copied to the same paths), and
# kvm-unit-tests' vmexit.flat at /kut/vmexit.flat when $KUT_FLAT exists (the guest's `kut` step).
#
# Adapted from ../shared/lab/build.sh (kvmloop dropped: exitscope's own VMM is the workload).
# The kernel/busybox packages are only downloaded and unpacked (never installed on the host)
# and cached under $LAB/debs and $LAB/pkg-*; the initramfs is rebuilt on every call (≈2 s).
#
# Usage:  tests/lab/build.sh [EXITSCOPE_BIN]       (default target/release/exitscope)
# Env:    LAB (default /tmp/exitscope-lab)   KPKG (kernel package; default: what
#         linux-image-amd64 depends on)   NO_APT=1 (do not apt-get update/install/download)
#         KUT_FLAT (default ../shared/kut/vmexit.flat next to the repository)
# Output: $LAB/<kver>/vmlinuz, $LAB/<kver>/initramfs.cpio.gz, $LAB/current -> <kver>
# Exit:   0 ok; 3 = the lab cannot be built here (missing tool/package/network: the message
#         says which; run-lab-test.sh turns this into SKIP); anything else = a real error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=${LAB:-/tmp/exitscope-lab}
BIN=${1:-$REPO/target/release/exitscope}
skip() { echo "build.sh: cannot build the lab: $*" >&2; exit 3; }

[ -x "$BIN" ] || { echo "build.sh: no exitscope binary at $BIN (cargo build --release first)" >&2; exit 1; }
mkdir -p "$LAB/debs"

TOOLS="qemu-system-x86_64 cpio depmod modprobe xz zstd dpkg-deb ldd gzip"
missing() { for t in $TOOLS; do command -v "$t" >/dev/null || echo "$t"; done; }
if [ -n "$(missing)" ] && [ -z "${NO_APT:-}" ]; then
	command -v apt-get >/dev/null || skip "missing $(missing | xargs) and no apt-get"
	echo "build.sh: installing host tools (missing: $(missing | xargs))"
	apt-get update -qq || skip "apt-get update failed (no network?)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		qemu-system-x86 cpio kmod xz-utils zstd >/dev/null ||
		skip "apt-get install qemu-system-x86 cpio kmod xz-utils zstd failed"
fi
[ -z "$(missing)" ] || skip "missing host tools: $(missing | xargs)"

cd "$LAB/debs"
# Which kernel: the one the stock meta-package points at, unless KPKG says otherwise. With a
# cached download and no KPKG, reuse the cached one (no apt needed on a warm run).
if [ -z "${KPKG:-}" ]; then
	if [ -f "$LAB/debs/kpkg" ] && ls "$(cat "$LAB/debs/kpkg")"_*.deb >/dev/null 2>&1; then
		KPKG=$(cat "$LAB/debs/kpkg")
	else
		command -v apt-cache >/dev/null || skip "no apt-cache to resolve linux-image-amd64 (set KPKG)"
		KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
		if [ -z "$KPKG" ] && [ -z "${NO_APT:-}" ]; then
			apt-get update -qq || true
			KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
		fi
		[ -n "$KPKG" ] || skip "cannot resolve linux-image-amd64's kernel package (no apt lists?)"
	fi
fi
echo "build.sh: kernel package $KPKG"
fetch() { # fetch PKG: download PKG's .deb into the cache unless there
	ls "$1"_*.deb >/dev/null 2>&1 && return 0
	[ -z "${NO_APT:-}" ] || skip "$1 not cached in $LAB/debs and NO_APT is set"
	apt-get download "$1" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 || true; apt-get download "$1" >/dev/null 2>&1; } ||
		skip "apt-get download $1 failed (package not found or no network)"
}
fetch "$KPKG"
fetch busybox-static
echo "$KPKG" > "$LAB/debs/kpkg"
KDEB=$(ls "${KPKG}"_*.deb | head -1)
BDEB=$(ls busybox-static_*.deb | head -1)

KX="$LAB/pkg-$KPKG"
if [ ! -d "$KX/boot" ]; then
	rm -rf "$KX"; mkdir -p "$KX"
	dpkg-deb -x "$KDEB" "$KX"
fi
KVER=$(ls "$KX/lib/modules" | head -1)
echo "build.sh: kernel version $KVER"
grep -q '^CONFIG_FUNCTION_GRAPH_TRACER=y' "$KX/boot/config-$KVER" ||
	skip "$KVER lacks CONFIG_FUNCTION_GRAPH_TRACER"
[ -f "$KX/lib/modules/$KVER/modules.dep" ] || depmod -b "$KX" "$KVER"

OUT="$LAB/$KVER"
ROOT="$OUT/root"
rm -rf "$ROOT"; mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,out,etc,lib/modules/$KVER}
cp "$KX/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$KX/boot/config-$KVER" "$OUT/config"

# busybox
mkdir -p "$OUT/bb"; [ -x "$OUT/bb/bin/busybox" ] || dpkg-deb -x "$BDEB" "$OUT/bb"
cp "$OUT/bb/bin/busybox" "$ROOT/bin/busybox"

# exitscope + its shared libraries and the loader, at the same paths as on the host
cp "$BIN" "$ROOT/bin/exitscope"
ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u | while read -r lib; do
	mkdir -p "$ROOT$(dirname "$lib")"
	cp -L "$lib" "$ROOT$lib"   # the path ldd printed (PT_INTERP / a default search dir)
done
# the copy must run from the initramfs alone (catches a missing library or loader)
chroot "$ROOT" /bin/exitscope --version >/dev/null ||
	{ echo "build.sh: /bin/exitscope does not run inside the initramfs root $ROOT" >&2; exit 1; }
echo "build.sh: exitscope libraries: $(ldd "$BIN" | awk '{print $1}' | xargs)"

# kvm-unit-tests' own image for `exitscope run --kut` in the guest (never committed: the
# shared build of it, or a user's own, copied like the binary)
KUT_FLAT=${KUT_FLAT:-$REPO/../shared/kut/vmexit.flat}
if [ -f "$KUT_FLAT" ]; then
	mkdir -p "$ROOT/kut"
	cp "$KUT_FLAT" "$ROOT/kut/vmexit.flat"
	echo "build.sh: kvm-unit-tests image $KUT_FLAT -> /kut/vmexit.flat ($(sha256sum "$KUT_FLAT" | cut -c1-16))"
else
	echo "build.sh: no kvm-unit-tests image at $KUT_FLAT (set KUT_FLAT): the guest's kut step will be skipped"
fi

# modules: closure of what we need, decompressed (busybox insmod wants plain .ko)
WANT="kvm-amd kvm-intel 9p 9pnet_virtio virtio_pci"
mkdir -p "$ROOT/etc/mods"   # /etc/mods/<name> = insmod order (dependencies first) for <name>
for m in $WANT; do
	modprobe -d "$KX" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}' |
	while read -r f; do
		rel=${f#"$KX/lib/modules/$KVER/"}
		dst="$ROOT/lib/modules/$KVER/$rel"
		rel=${rel%.xz}; rel=${rel%.zst}; rel=${rel%.gz}
		if [ ! -f "$ROOT/lib/modules/$KVER/$rel" ]; then
			mkdir -p "$(dirname "$dst")"
			case "$f" in
			*.ko.xz)  xz -dc "$f" > "${dst%.xz}" ;;
			*.ko.zst) zstd -qdc "$f" > "${dst%.zst}" ;;
			*.ko.gz)  gzip -dc "$f" > "${dst%.gz}" ;;
			*)        cp "$f" "$dst" ;;
			esac
		fi
		echo "/lib/modules/$KVER/$rel"
	done > "$ROOT/etc/mods/$(echo "$m" | tr - _)"
done
[ -s "$ROOT/etc/mods/kvm_amd" ] || skip "no kvm-amd module in $KPKG"
[ -s "$ROOT/etc/mods/9p" ] && [ -s "$ROOT/etc/mods/9pnet_virtio" ] || skip "no 9p modules in $KPKG"
cp "$KX/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$ROOT/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$ROOT" "$KVER"

cp "$HERE/init" "$ROOT/init"
chmod 755 "$ROOT/init" "$ROOT/bin/busybox" "$ROOT/bin/exitscope"
echo "$KVER" > "$ROOT/etc/kver"

(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$OUT/initramfs.cpio.gz"
ln -sfn "$KVER" "$LAB/current"
echo "build.sh: $OUT/vmlinuz ($(du -h "$OUT/vmlinuz" | cut -f1)), $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
