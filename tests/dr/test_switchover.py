"""refugectl switchover: planned, zero loss, under client load through the
front door, there and back, and safe to re-run."""
import time

from conftest import Load, ctl, introspect, opaque_client, wait_until


def test_switchover_loses_nothing_under_load(make_deployment):
    dep = make_deployment(mode="remote_apply")
    client = opaque_client(dep)
    load = Load(dep, client, interval=0.005).start()
    time.sleep(0.5)
    t0 = time.monotonic()
    r = ctl(dep, "switchover", "--to", "b")
    t1 = time.monotonic()
    time.sleep(0.5)
    r_back_t0 = time.monotonic()
    r_back = ctl(dep, "switchover", "--to", "a")
    r_back_t1 = time.monotonic()
    time.sleep(0.5)
    load.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r_back.returncode == 0, r_back.stdout + r_back.stderr
    assert "zero loss" in r.stdout and "write pause" in r.stdout

    acked = load.acked()
    assert len(acked) > 100
    # the client kept succeeding around each switch (the pause is recorded, not asserted:
    # wall-clock figures belong to the drill and the benchmarks)
    assert any(t0 <= e[1] for e in acked) and any(e[1] >= r_back_t1 for e in acked)
    print("client-side longest gaps: %.0f ms, %.0f ms" % (load.longest_gap_ms(t0, t1),
                                                         load.longest_gap_ms(r_back_t0, r_back_t1)))
    # every acknowledged write is on both nodes
    wait_until(lambda: dep.status("b")["lsn"] == dep.status("a")["lsn"], what="b in step")
    for _, _, _, tok in acked:
        assert introspect(dep, client, tok, dep.url("a")), "lost on a"
        assert introspect(dep, client, tok, dep.url("b")), "lost on b"
    sa, sb = dep.status("a"), dep.status("b")
    assert sa["role"] == "active" and sb["role"] == "standby" and sa["epoch"] == sb["epoch"] == 3

    # re-run: already done, nothing promoted again
    r = ctl(dep, "switchover", "--to", "a")
    assert r.returncode == 0 and "already done" in r.stdout, r.stdout
    assert dep.status("a")["epoch"] == 3


def test_switchover_refused_without_a_connected_standby(make_deployment):
    dep = make_deployment(mode="async", relay=True)
    dep.relay.cut()
    wait_until(lambda: not dep.status("b")["peer"]["connected"], what="b disconnected")
    r = ctl(dep, "switchover", "--to", "b")
    assert r.returncode == 3, r.stdout
    assert "not connected" in r.stdout
    assert dep.status("a")["role"] == "active" and dep.status("b")["role"] == "standby"
