# bench/plot/repl-lag.gp — replication lag (commit -> standby ACK) against
# the offered write rate, async on loopback (bench/repl-lag.sh's
# repl-lag.dat: offered, achieved, lag p50, lag p99, request p99; offered 0
# is the unpaced run). The achieved rate is drawn on the right axis.
# gnuplot -e "in='bench/out/repl-lag.dat'; out='docs/img/repl-lag.svg'" bench/plot/repl-lag.gp
set terminal svg size 760,440 dynamic font "sans,12" background rgb "white"
set output out
set title "Replication lag against offered write rate (async, loopback, 2 cores shared with wrk)"
set xlabel "offered writes/s (POST /scim2/Users, paced)"
set ylabel "lag, ms"
set y2label "achieved writes/s"
set yrange [0:*]
set y2range [0:*]
set xrange [0:*]
set ytics nomirror
set y2tics
set grid
set key below horizontal
set style data linespoints
set arrow from graph 0, first 10 to graph 1, first 10 nohead dt 2 lc rgb "#888888"
set label "goal: p99 <= 10 ms at 5,000/s" at graph 0.6, first 11 tc rgb "#666666"
paced(x) = ($1 > 0) ? x : 1/0
plot in using 1:(paced($4)) title "lag p99" lw 2 pt 7 lc rgb "#d62728", \
     in using 1:(paced($3)) title "lag p50" lw 2 pt 5 lc rgb "#1f77b4", \
     in using 1:(paced($2)) axes x1y2 title "achieved writes/s (right axis)" lw 1 pt 1 dt 3 lc rgb "#555555"
