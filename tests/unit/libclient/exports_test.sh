#!/bin/sh
# libregiond.so exports exactly the C API: every rgd_* function declared in
# <regiond/client.h>, and nothing else (no shm/, codec, Boost or libstdc++ symbols).
# usage: exports_test.sh LIBREGIOND_SO CLIENT_H
set -eu
lib=$1
header=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u)
declared=$(grep -o 'rgd_[a-z_]*(' "$header" | tr -d '(' | sort -u)
status=0
extra=$(printf '%s\n' "$exported" | grep -v '^rgd_' || true)
if [ -n "$extra" ]; then
  echo "libregiond.so exports symbols outside the C API:"; printf '%s\n' "$extra" | head -20
  status=1
fi
missing=$(printf '%s\n' "$declared" | while read -r f; do printf '%s\n' "$exported" | grep -qx "$f" || echo "$f"; done)
if [ -n "$missing" ]; then
  echo "declared in client.h but not exported:"; printf '%s\n' "$missing"
  status=1
fi
undeclared=$(printf '%s\n' "$exported" | while read -r f; do printf '%s\n' "$declared" | grep -qx "$f" || echo "$f"; done)
if [ -n "$undeclared" ]; then
  echo "exported but not declared in client.h:"; printf '%s\n' "$undeclared"
  status=1
fi
[ "$status" -eq 0 ] && echo "exports ok: $(printf '%s\n' "$exported" | wc -l) rgd_* symbols"
exit "$status"
