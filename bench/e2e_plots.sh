#!/usr/bin/env bash
# Plots of a bench/e2e.sh --sweep run (its CSV, written by bench_e2e --csv), as
# PNG and SVG, with gnuplot (gnuplot-nox from scripts/install-deps.sh; PNG by
# its pngcairo terminal, or png when that is missing):
#
#   bench/e2e_plots.sh CSV OUTDIR
#
#   throughput_vs_clients     requests/s against clients (log2), three paths
#   latency_vs_clients        p99 (solid) and p50 (dashed) against clients
#   rows_per_s_vs_result_size rows/s against rows per result (log), three
#                             paths at 1 client (solid) and 16 (dashed)
#   daemon_cpu_vs_clients     the regiond daemon's CPU µs per request (total,
#                             user, system) against clients, pgbouncer's beside
#   cpu_per_request_vs_clients  the CPU a request costs on each path (client +
#                             postgres + daemon or pgbouncer) against clients
#
# CSV columns (bench_e2e): kind,path,clients,rows,seconds,calls,req_per_s,
# rows_per_s,p50_us,p99_us,client_user_us,client_sys_us,daemon_user_us,
# daemon_sys_us,pg_user_us,pg_sys_us,pgbouncer_user_us,pgbouncer_sys_us,
# path_total_us (CPU columns in µs per request); kind is "pk" for the curve,
# "rows" for the result-size sweep.
set -euo pipefail
die() { echo "bench/e2e_plots: $*" >&2; exit 1; }
(($# == 2)) || die "usage: bench/e2e_plots.sh CSV OUTDIR"
CSV=$1 OUT=$2
[[ -f $CSV ]] || die "no $CSV"
command -v gnuplot >/dev/null || die "gnuplot is not installed (scripts/install-deps.sh)"
mkdir -p "$OUT"
png_term=pngcairo
gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo || png_term=png

DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
# One whitespace-separated file per series, sorted along its x axis:
#   pk-PATH.dat (by clients), rows-PATH-cN.dat (by rows), same columns as the CSV.
awk -F, -v dir="$DATA" 'NR > 1 {
    line = $1; for (i = 2; i <= NF; ++i) line = line " " $i
    if ($1 == "pk") f = dir "/pk-" $2 ".dat"; else f = dir "/rows-" $2 "-c" $3 ".dat"
    print line > f
  }' "$CSV"
for f in "$DATA"/pk-*.dat; do [[ -e $f ]] && sort -n -k3,3 -o "$f" "$f"; done
for f in "$DATA"/rows-*.dat; do [[ -e $f ]] && sort -n -k4,4 -o "$f" "$f"; done

declare -A COLOR=([regiond]='#1f77b4' [direct]='#2ca02c' [pgbouncer]='#d62728')
PATHS=(regiond direct pgbouncer)

# plot_both NAME BODY: render BODY (gnuplot commands ending in a plot) as
# OUT/NAME.png and OUT/NAME.svg.
plot_both() {
  local name=$1 body=$2
  gnuplot <<EOF
set terminal $png_term size 900,560 font ",11"
set output "$OUT/$name.png"
$body
EOF
  gnuplot <<EOF
set terminal svg size 900,560 dynamic font ",11"
set output "$OUT/$name.svg"
$body
EOF
  echo "bench/e2e_plots: $OUT/$name.png, $OUT/$name.svg"
}

COMMON='set grid
set key top left box opaque
set rmargin 6
set datafile missing "nan"'

# series PREFIX SUFFIX USING TITLE_SUFFIX DASH: one "file using ... title ..."
# per path that has data, comma-separated.
series() {
  local prefix=$1 suffix=$2 using=$3 title=$4 dash=$5 p out=""
  for p in "${PATHS[@]}"; do
    local f="$DATA/$prefix$p$suffix.dat"
    [[ -s $f ]] || continue
    out+="${out:+, }\"$f\" using $using with linespoints lw 2 pt 7 ps 0.8 dt $dash lc rgb \"${COLOR[$p]}\" title \"$p$title\""
  done
  echo "$out"
}

pk=$(series pk- "" "3:7" "" 1)
[[ -n $pk ]] || die "no curve (kind pk) in $CSV"
plot_both throughput_vs_clients "$COMMON
set title 'Primary-key SELECT, same-host replica: throughput'
set xlabel 'clients'
set ylabel 'requests/s'
set logscale x 2
set yrange [0:*]
plot $pk"

p99=$(series pk- "" "3:10" " p99" 1)
p50=$(series pk- "" "3:9" " p50" 2)
plot_both latency_vs_clients "$COMMON
set title 'Primary-key SELECT, same-host replica: latency (p99 solid, p50 dashed)'
set xlabel 'clients'
set ylabel 'µs'
set logscale x 2
set logscale y
plot $p99, $p50"

rows1=$(series rows- -c1 "4:8" ", 1 client" 1)
rows16=$(series rows- -c16 "4:8" ", 16 clients" 2)
if [[ -n $rows1$rows16 ]]; then
  plot_both rows_per_s_vs_result_size "$COMMON
set title 'select ... where id <= N: rows/s against rows per result'
set xlabel 'rows per result'
set ylabel 'rows/s'
set logscale x 10
set logscale y 10
set format y '%.0s%c'
plot ${rows1}${rows1:+${rows16:+, }}$rows16"
fi

daemon=$DATA/pk-regiond.dat bouncer=$DATA/pk-pgbouncer.dat
cpu_series=()
if [[ -s $daemon ]]; then
  cpu_series+=("\"$daemon\" using 3:(\$13+\$14) with linespoints lw 2 pt 7 lc rgb \"${COLOR[regiond]}\" title 'regiond daemon, user+system'"
    "\"$daemon\" using 3:13 with linespoints lw 1 pt 6 dt 2 lc rgb \"${COLOR[regiond]}\" title 'regiond daemon, user'"
    "\"$daemon\" using 3:14 with linespoints lw 1 pt 4 dt 3 lc rgb \"${COLOR[regiond]}\" title 'regiond daemon, system'")
fi
if [[ -s $bouncer ]]; then
  cpu_series+=("\"$bouncer\" using 3:(\$17+\$18) with linespoints lw 2 pt 7 lc rgb \"${COLOR[pgbouncer]}\" title 'pgbouncer, user+system'")
fi
if ((${#cpu_series[@]})); then
  joined=$(printf '%s, ' "${cpu_series[@]}")
  plot_both daemon_cpu_vs_clients "$COMMON
set title 'CPU of the proxy per request (primary-key SELECT)'
set key top right
set xlabel 'clients'
set ylabel 'CPU µs per request'
set logscale x 2
set yrange [0:*]
plot ${joined%, }"
fi

total=$(series pk- "" "3:19" "" 1)
plot_both cpu_per_request_vs_clients "$COMMON
set title 'CPU per request on each path: client + postgres + daemon or pgbouncer'
set xlabel 'clients'
set ylabel 'CPU µs per request'
set logscale x 2
set yrange [0:*]
plot $total"
