#!/usr/bin/python3
"""bench/plot/drill-dat.py — turns a `refugectl drill` report (drill.json)
into what bench/plot/drill.gp draws: DAT with one line per request (sent at,
s; latency, ms; HTTP status; 1 if it succeeded) and EVENTS, gnuplot commands
that mark the kill, the failover's routing, the switchover and the phases.

usage: drill-dat.py DRILL.JSON DAT EVENTS.gp
"""
import json
import sys

rep = json.load(open(sys.argv[1]))
fields = rep.get("timeline_fields", ["sent_ms", "answered_ms", "status", "kind"])
i_sent, i_ans, i_st = fields.index("sent_ms"), fields.index("answered_ms"), fields.index("status")
with open(sys.argv[2], "w") as f:
    f.write("# sent_s latency_ms status ok\n")
    for ev in rep.get("timeline", []):
        st = int(ev[i_st])
        f.write("%.4f %.3f %d %d\n" % (ev[i_sent] / 1000.0, max(ev[i_ans] - ev[i_sent], 0.01), st,
                                       1 if 200 <= st < 400 else 0))
res, evs = rep.get("result", {}), rep.get("events_ms", {})
with open(sys.argv[3], "w") as g:
    g.write('set title "DR drill (%s): every request through the front door; RTO %s ms, switchover pause %s ms, '
            '%s acknowledged writes lost"\n' % (rep.get("mode", "?"), res.get("rto_ms", "?"),
                                               res.get("switchover_pause_ms", "?"), res.get("rpo_lost_writes", "?")))
    marks = [("kill", "kill -9 active", "#d62728"), ("routed", "failover routed", "#2ca02c"),
             ("switchover_write_stop", "switchover: writes stop", "#9467bd"),
             ("switchover_routed", "switchover routed", "#9467bd")]
    for n, (key, label, color) in enumerate(marks):
        if key in evs and evs[key] >= 0:
            x = evs[key] / 1000.0
            g.write('set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lc rgb "%s" dt 2\n' % (x, x, color))
            g.write('set label "%s" at %.3f, graph %.2f tc rgb "%s" offset 0.3,0 font ",10"\n'
                    % (label, x, 0.95 - 0.06 * n, color))
    for ph in rep.get("phases", []):
        if ph.get("name") in ("baseline", "degraded", "final"):
            g.write('set label "%s" at %.3f, graph 0.04 tc rgb "#777777" font ",10"\n'
                    % (ph["name"], ph["start_ms"] / 1000.0 + 0.05))
