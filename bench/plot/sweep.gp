# bench/plot/sweep.gp — client_credentials JWT ES256 req/s against wrk
# connections, refuged and oidc-provider (bench/sweep.sh's sweep.dat).
# gnuplot -e "in='bench/out/sweep.dat'; out='docs/img/sweep.svg'" bench/plot/sweep.gp
set terminal svg size 720,420 dynamic font "sans,12" background rgb "white"
set output out
set title "client\\_credentials, JWT ES256: throughput against concurrency (2 cores, wrk on the same machine)"
set xlabel "wrk connections"
set ylabel "requests/s"
set logscale x 2
set xtics (1, 4, 16, 64, 128)
set xrange [0.8:160]
set yrange [0:*]
set grid
set key below horizontal
set style data linespoints
plot in using 1:2 title "refuged (2 HTTP threads)" lw 2 pt 7 lc rgb "#1f77b4", \
     in using 1:4 title "oidc-provider (2 cluster workers)" lw 2 pt 5 lc rgb "#d62728"
