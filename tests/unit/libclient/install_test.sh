#!/bin/sh
# `meson install` into a temporary DESTDIR, then build a C and a C++ program
# against the installed header and regiond.pc ALONE (no source tree, no build
# tree), run them, and expect rgd_connect to a missing socket to say
# "daemon not running at PATH". Also checks the installed regionctl runs.
# usage: install_test.sh BUILD_DIR PREFIX LIBDIR B_SANITIZE SOURCE_DIR
set -eu
build=$1 prefix=$2 libdir=$3 sanitize=$4 src=$5
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac

dest=$(mktemp -d /tmp/rgd-install-test.XXXXXX)
trap 'rm -rf "$dest"' EXIT INT TERM

meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dest.log" 2>&1 || {
  cat "$dest.log"; rm -f "$dest.log"; echo "meson install failed"; exit 1; }
rm -f "$dest.log"

for f in "$dest$prefix/include/regiond/client.h" "$dest$prefix/include/regiond/client.hpp" \
         "$dest$libdir/pkgconfig/regiond.pc" "$dest$libdir/libregiond.so" "$dest$libdir/libregiond.so.0" \
         "$dest$libdir/libregiond.so.0.1.0" "$dest$prefix/bin/regionctl"; do
  [ -e "$f" ] || { echo "not installed: $f"; exit 1; }
done

# Only the installed .pc file, its paths re-rooted into the DESTDIR.
export PKG_CONFIG_LIBDIR="$dest$libdir/pkgconfig"
export PKG_CONFIG_PATH=
export PKG_CONFIG_SYSROOT_DIR="$dest"
cflags=$(pkg-config --cflags regiond)
libs=$(pkg-config --libs regiond)
echo "pkg-config: $cflags $libs"

extra=
if [ "$sanitize" != none ]; then extra="-fsanitize=$sanitize"; fi  # the library was built with it
work=$dest/work
mkdir -p "$work"
cp "$src/install_app/app.c" "$src/install_app/app.cpp" "$work/"
cd "$work"
# shellcheck disable=SC2086
${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror $extra app.c $cflags $libs -o app_c
# shellcheck disable=SC2086
${CXX:-c++} -std=c++20 -Wall -Wextra -Wpedantic -Werror $extra app.cpp $cflags $libs -o app_cpp

export LD_LIBRARY_PATH="$dest$libdir"
missing=$work/no-such-dir/regiond.sock
for app in ./app_c ./app_cpp; do
  set +e
  out=$($app "$missing")
  rc=$?
  set -e
  if [ "$rc" -ne 2 ] || [ "$out" != "daemon not running at $missing" ]; then
    echo "$app: exit $rc, output: $out"; exit 1
  fi
  echo "$app: $out"
done

# The installed regionctl runs with the installed library.
set +e
out=$("$dest$prefix/bin/regionctl" --socket "$work/admin.sock" status 2>&1)
rc=$?
set -e
if [ "$rc" -ne 1 ] || [ "$out" != "regionctl: regiond not running at $work/admin.sock" ]; then
  echo "installed regionctl: exit $rc, output: $out"; exit 1
fi
echo "installed regionctl: $out"
echo "install test ok"
