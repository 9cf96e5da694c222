"""Real OpenLDAP servers for the LDAP userstore tests: Debian's slapd, started
with its own slapd.conf on loopback ports (never the system service), one
mdb database per instance, killed at teardown whatever happens.

A provider has the syncprov overlay (it is region A's directory); a consumer
replicates from a provider with syncrepl refreshAndPersist (region B's
replica). Both run the dynlist overlay, which computes memberOf from
groupOfNames at search time, so group membership reads the same on both
sides without replicating an operational attribute.

Each instance serves ldap:// (StartTLS available) and ldaps:// with a server
certificate for 127.0.0.1 signed by a throw-away CA (see make_ca).

Used as a library by tests/integration/test_ldap.py; `python3 slapd.py DIR`
starts a provider with users.ldif for poking at by hand.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ROOT_DN = "cn=admin," + SUFFIX
ROOT_PW = "admin-secret"
# the service account refuged binds as (an entry in users.ldif, so it replicates)
SERVICE_DN = "cn=refuge,ou=system," + SUFFIX
SERVICE_PW = "refuge-service-pw"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 30)
    r = subprocess.run(args, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s %s" % (args[0], r.returncode, r.stdout, r.stderr))
    return r


def make_ca(dirpath, name="ca"):
    """A CA and a server certificate for 127.0.0.1 / localhost. Returns
    (ca_pem, cert_pem, key_pem)."""
    os.makedirs(dirpath, exist_ok=True)
    ca_key, ca = os.path.join(dirpath, name + ".key"), os.path.join(dirpath, name + ".pem")
    key, csr, crt = (os.path.join(dirpath, name + "-server" + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(dirpath, name + "-ext.cnf")
    if os.path.exists(crt):
        return ca, crt, key
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Refuge test CA %s" % name])
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext])
    for p in (ca_key, key):
        os.chmod(p, 0o600)
    return ca, crt, key


CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/dyngroup.schema
# like many Active Directory set-ups: a DN with an empty password is an
# (unauthenticated) anonymous bind that succeeds
allow bind_anon_dn
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
moduleload dynlist
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
sizelimit 500

database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/db
maxsize 33554432
index objectClass eq
index entryCSN,entryUUID eq
index uid eq
access to attrs=userPassword by self =xw by anonymous auth by * none
access to dn.base="" by * read
access to * by users read by anonymous auth by * none
overlay dynlist
dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames
overlay syncprov
syncprov-checkpoint 100 10
{syncrepl}
"""

SYNCREPL = """\
syncrepl rid=001 provider={provider} type=refreshAndPersist retry="1 +" timeout=3
  searchbase="{suffix}" scope=sub attrs="*,+" schemachecking=off
  bindmethod=simple binddn="{root_dn}" credentials={root_pw}
"""


class Slapd:
    """One slapd. provider=None: a provider loaded with `ldif`; else a
    consumer of that Slapd (it starts empty and syncs)."""

    def __init__(self, workdir, name, ldif=None, provider=None, tls=None):
        self.name = name
        self.dir = os.path.join(workdir, "slapd-" + name)
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)
        self.port, self.tls_port = free_port(), free_port()
        self.url = "ldap://127.0.0.1:%d" % self.port
        self.ldaps_url = "ldaps://127.0.0.1:%d" % self.tls_port
        self.provider = provider
        self.ldif = ldif
        self.ca, self.cert, self.key = tls or make_ca(os.path.join(workdir, "pki"))
        self.proc = None
        self.conf = os.path.join(self.dir, "slapd.conf")
        syncrepl = SYNCREPL.format(provider=provider.url, suffix=SUFFIX, root_dn=ROOT_DN,
                                   root_pw=ROOT_PW) if provider else ""
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=self.dir, ca=self.ca, cert=self.cert, key=self.key, suffix=SUFFIX,
                                root_dn=ROOT_DN, root_pw=ROOT_PW, syncrepl=syncrepl))
        if ldif and not provider:
            run(["/usr/sbin/slapadd", "-q", "-f", self.conf, "-l", ldif])

    # --- life -----------------------------------------------------------
    def start(self, timeout=10.0):
        self.log = open(os.path.join(self.dir, "slapd.log"), "ab")
        env = dict(os.environ, LDAPTLS_CACERT=self.ca)
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-f", self.conf,
                                      "-h", "%s/ %s/" % (self.url, self.ldaps_url)],
                                     stdout=self.log, stderr=self.log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd %s exited: %s" % (self.name, self.tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if self.search("", "base", "(objectClass=*)", ["namingContexts"], ok_codes=(0, 32)) is not None:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("slapd %s did not start: %s" % (self.name, self.tail()))

    def tail(self):
        try:
            with open(os.path.join(self.dir, "slapd.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def pause(self):
        """SIGSTOP: the TCP port still accepts, nothing answers (a hung directory).
        Returns once the kernel shows the process stopped."""
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                if f.read().rpartition(")")[2].split()[0] == "T":
                    return
            time.sleep(0.001)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # --- client side (OpenLDAP's own tools, not our code) -----------------
    def _env(self):
        return dict(os.environ, LDAPTLS_CACERT=self.ca, LDAPTLS_REQCERT="demand")

    def search(self, base, scope, filt, attrs, ok_codes=(0,)):
        """ldapsearch as the root DN; {dn: {attr: [values]}} or None when the code is not ok."""
        r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.url, "-D", ROOT_DN,
                            "-w", ROOT_PW, "-b", base, "-s", scope, filt] + list(attrs),
                           capture_output=True, text=True, timeout=10, env=self._env())
        if r.returncode not in ok_codes:
            return None
        out, dn = {}, None
        for line in r.stdout.splitlines():
            if not line.strip():
                dn = None
                continue
            k, _, v = line.partition(": ")
            if k == "dn":
                dn = v
                out[dn] = {}
            elif dn is not None:
                out[dn].setdefault(k.rstrip(":"), []).append(v)
        return out

    def context_csn(self):
        e = self.search(SUFFIX, "base", "(objectClass=*)", ["contextCSN"]) or {}
        return sorted(next(iter(e.values()), {}).get("contextCSN", []))

    def entry_uuid(self, uid):
        e = self.search(SUFFIX, "sub", "(uid=%s)" % uid, ["entryUUID"])
        return next(iter(e.values()))["entryUUID"][0] if e else None

    def modify(self, ldif_text):
        """ldapmodify as the root DN (provider)."""
        run(["ldapmodify", "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW], input=ldif_text,
            env=self._env())

    def add_user(self, uid, password, cn=None, mail=None, groups=()):
        lines = ["dn: uid=%s,ou=people,%s" % (uid, SUFFIX), "changetype: add", "objectClass: inetOrgPerson",
                 "uid: %s" % uid, "cn: %s" % (cn or uid), "sn: %s" % uid, "userPassword: %s" % password]
        if mail:
            lines.append("mail: %s" % mail)
        text = "\n".join(lines) + "\n"
        for g in groups:
            text += "\ndn: cn=%s,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=%s,ou=people,%s\n" % (
                g, SUFFIX, uid, SUFFIX)
        self.modify(text)

    def wait_synced_with(self, provider, timeout=20.0):
        """Waits until this consumer's contextCSN equals the provider's."""
        deadline = time.monotonic() + timeout
        want = None
        while time.monotonic() < deadline:
            want = provider.context_csn()
            if want and self.context_csn() == want:
                return want
            time.sleep(0.1)
        raise AssertionError("consumer %s not in sync: %r vs %r" % (self.name, self.context_csn(), want))


USERS_LDIF = os.path.join(HERE, "users.ldif")


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/refuge-slapd"
    shutil.rmtree(d, ignore_errors=True)
    s = Slapd(d, "provider", ldif=USERS_LDIF).start()
    print("slapd on %s and %s (Ctrl-C stops)" % (s.url, s.ldaps_url), flush=True)
    try:
        s.proc.wait()
    except KeyboardInterrupt:
        s.stop()
