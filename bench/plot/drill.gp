# bench/plot/drill.gp — the DR drill's timeline: each request's latency at
# the time it was sent, failures in red, with the kill, the failover and the
# switchover marked (bench/plot/drill-dat.py makes the data and events).
# gnuplot -e "in='drill.dat'; events='drill-events.gp'; out='docs/img/drill.svg'" bench/plot/drill.gp
set terminal svg size 860,440 dynamic font "sans,12" background rgb "white"
set output out
set xlabel "time since the drill started, s"
set ylabel "request latency, ms (log)"
set logscale y
set grid
set key below horizontal
load events
plot in using 1:($4 == 1 ? $2 : 1/0) title "succeeded" with points pt 7 ps 0.3 lc rgb "#1f77b4", \
     in using 1:($4 == 0 ? $2 : 1/0) title "failed (5xx / no answer)" with points pt 2 ps 0.8 lc rgb "#d62728"
