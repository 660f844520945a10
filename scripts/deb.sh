#!/usr/bin/env bash
# Builds the .deb of fpesa: `make install` into a staging root under /usr,
# a control file whose Depends are what dpkg-shlibdeps finds the programs and
# plugins linked against, then dpkg-deb.
#
#   scripts/deb.sh BUILD VERSION ARCH OUTPUT.deb     (run by `make deb`)
set -eu
build=$1 version=$2 arch=$3 out=$4
cd "$(dirname "$0")/.."
root=$(pwd)

case "$build" in /*) ;; *) build=$root/$build ;; esac
case "$out" in /*) ;; *) out=$root/$out ;; esac
[ -n "$arch" ] || { echo "fpesa: error: dpkg --print-architecture gave nothing" >&2; exit 1; }
stage=$build/deb/root
rm -rf "$build/deb"
mkdir -p "$stage/DEBIAN"
make --no-print-directory BUILD="$build" PREFIX=/usr DESTDIR="$stage" install >/dev/null

# dpkg-shlibdeps wants to run in a source tree with debian/control.
work=$build/deb/src
mkdir -p "$work/debian"
printf 'Source: fpesa\n\nPackage: fpesa\nArchitecture: any\n' >"$work/debian/control"
objs=()
for f in "$stage"/usr/bin/fpesa-* "$stage"/usr/lib/fpesa/plugins/*.so; do objs+=("-e$f"); done
depends=$(cd "$work" && dpkg-shlibdeps -O --warnings=0 "${objs[@]}" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "fpesa: error: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" packaging/deb/control.in >"$stage/DEBIAN/control"
install -m 644 packaging/deb/conffiles "$stage/DEBIAN/conffiles"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "fpesa: built $out"
dpkg-deb --field "$out" Package Version Architecture Depends
