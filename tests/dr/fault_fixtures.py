"""pytest fixtures of the fault-injection suite, and its summary table.

tests/dr/conftest.py belongs to the refugectl tests, so the fault tests
import these (`from fault_fixtures import *`):

  topo            a fresh Topology (topology.py) per test: network namespaces
                  when root, loopback otherwise (or with REFUGE_FAULT_LOOPBACK=1);
                  the test's own thread sits on the client host for the whole
                  test; always torn down.
  make_cluster    make_cluster(**kw) -> a started faults.Cluster on topo;
                  every process killed at teardown, whatever happened.
  fault_results   the session's collector: record(scenario, cycles, acked,
                  lost, worst_rto_ms, worst_lag_ms, note).

At the end of the session the collected rows are printed as a table
(pytest's terminal summary), written to $REFUGE_BUILD/fault-summary.md, and,
under REFUGE_SOAK=1, into docs/reliability.md with the machine and the date.
"""
import datetime
import os
import platform
import re
import shutil

import pytest

import faults
import topology

SUMMARY_BEGIN = "<!-- fault-soak-summary:begin -->"
SUMMARY_END = "<!-- fault-soak-summary:end -->"


class Results:
    def __init__(self):
        self.rows = []
        self.where = set()

    def record(self, scenario, cycles, acked, lost, worst_rto_ms=None, worst_lag_ms=None, note=""):
        self.rows.append({"scenario": scenario, "cycles": cycles, "acked": acked, "lost": lost,
                          "rto": worst_rto_ms, "lag": worst_lag_ms, "note": note})

    # --- rendering
    @staticmethod
    def _ms(v):
        return "-" if v is None else "%d ms" % round(v)

    def table(self):
        head = ["scenario", "cycles", "acknowledged writes", "lost writes", "worst RTO", "worst lag", "notes"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for r in self.rows:
            lines.append("| %s | %d | %d | %d | %s | %s | %s |" % (r["scenario"], r["cycles"], r["acked"], r["lost"],
                                                                   self._ms(r["rto"]), self._ms(r["lag"]),
                                                                   r["note"]))
        return lines

    def machine(self):
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
                cpu = m.group(1).strip() if m else ""
        except OSError:
            pass
        mem = ""
        try:
            with open("/proc/meminfo") as f:
                mem = "%d GiB" % round(int(f.readline().split()[1]) / 1048576)
        except (OSError, ValueError, IndexError):
            pass
        build = "ASan+UBSan" if faults.asan_build() else "regular"
        return "%s %s, %s, %d cores, %s RAM; refuged %s build; %s" % (
            platform.system(), platform.release(), cpu or platform.machine(), os.cpu_count() or 0, mem, build,
            "; ".join(sorted(self.where)))

    def pytest_terminal_summary(self, terminalreporter):
        if not self.rows:
            return
        tr = terminalreporter
        tr.section("fault-injection summary (%s)" % ("soak" if faults.SOAK else "short"))
        for line in self.table():
            tr.write_line(line)
        tr.write_line("where: " + self.machine())
        text = self.render()
        build = os.environ.get("REFUGE_BUILD")
        if build and os.path.isdir(build):
            try:
                with open(os.path.join(build, "fault-summary.md"), "w") as f:
                    f.write(text)
            except OSError:
                pass
        if faults.SOAK:
            path = os.path.join(topology.SRC, "docs", "reliability.md")
            try:
                update_reliability_doc(path, text)
                tr.write_line("soak table written to %s" % path)
            except OSError as e:
                tr.write_line("cannot write %s: %s" % (path, e))

    def render(self):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return "\n".join(["Run of %s (%s):" % (now, "soak, REFUGE_SOAK=1" if faults.SOAK else "short"), "",
                          "Machine: " + self.machine(), ""] + self.table()) + "\n"


def update_reliability_doc(path, text):
    """Replaces the soak table between the markers (appends the section if missing)."""
    doc = open(path).read() if os.path.exists(path) else "# Reliability\n"
    block = SUMMARY_BEGIN + "\n" + text + SUMMARY_END
    if SUMMARY_BEGIN in doc and SUMMARY_END in doc:
        doc = re.sub(re.escape(SUMMARY_BEGIN) + ".*?" + re.escape(SUMMARY_END), lambda m: block, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n## Latest soak\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


_RESULTS = Results()


@pytest.fixture(scope="session")
def fault_results(request):
    pm = request.config.pluginmanager
    if not pm.is_registered(_RESULTS):
        pm.register(_RESULTS, "refuge-fault-summary")
    return _RESULTS


@pytest.fixture
def topo(fault_results):
    t = topology.Topology(force_loopback=os.environ.get("REFUGE_FAULT_LOOPBACK") == "1")
    fault_results.where.add(t.describe() if not t.netns else
                            "network namespaces" + ("; " + "; ".join(t.notes) if t.notes else ""))
    try:
        with t.client():
            yield t
    finally:
        t.down()


@pytest.fixture
def make_cluster(topo, tmp_path):
    made = []

    def make(start=True, **kw):
        c = faults.Cluster(topo, str(tmp_path / ("c%d" % len(made))), **kw)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        c.stop()


def tool_or_skip(name):
    if not shutil.which(name):
        pytest.skip("%s is not installed (scripts/install-deps installs it)" % name)
