"""refugectl cert: the cluster CA and node certificates, checked with the
openssl command-line tool as an independent verifier — the CA and node
certificates verify, keys are 0600, the extensions are what the replication
TLS contexts rely on, nothing is overwritten, and bad usage exits 2."""
import os
import stat
import subprocess

import pytest

from refuge import REFUGECTL


def ctl(*args):
    return subprocess.run([REFUGECTL, *args], capture_output=True, text=True, timeout=30)


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def x509_text(path):
    r = openssl("x509", "-in", path, "-noout", "-text")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_version_and_help():
    r = ctl("--version")
    assert r.returncode == 0 and r.stdout.startswith("refugectl ")
    r = ctl("help")
    assert r.returncode == 0 and "cert init DIR" in r.stdout and "cert issue NAME DIR" in r.stdout
    assert ctl().returncode == 2
    assert ctl("no-such-command").returncode == 2
    assert ctl("cert").returncode == 2
    assert ctl("cert", "init").returncode == 2
    assert ctl("cert", "issue", "only-name").returncode == 2


def test_init_issue_verify(tmp_path):
    d = str(tmp_path / "pki")
    r = ctl("cert", "init", d)
    assert r.returncode == 0, r.stderr
    assert mode(os.path.join(d, "ca.key")) == 0o600
    assert mode(d) == 0o700
    ca = x509_text(os.path.join(d, "ca.crt"))
    assert "CA:TRUE" in ca
    assert "Certificate Sign" in ca
    assert "prime256v1" in ca or "P-256" in ca
    # Self-signed: the CA verifies against itself.
    assert openssl("verify", "-CAfile", os.path.join(d, "ca.crt"), os.path.join(d, "ca.crt")).returncode == 0

    r = ctl("cert", "issue", "node-a", d, "--ip", "127.0.0.1", "--dns", "a.dr.example",
            "--ip", "::1")
    assert r.returncode == 0, r.stderr
    key, crt = os.path.join(d, "node-a.key"), os.path.join(d, "node-a.crt")
    assert mode(key) == 0o600
    r = openssl("verify", "-CAfile", os.path.join(d, "ca.crt"), crt)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    # Usable for TLS in both directions.
    for purpose in ("sslserver", "sslclient"):
        r = openssl("verify", "-purpose", purpose, "-CAfile", os.path.join(d, "ca.crt"), crt)
        assert r.returncode == 0, (purpose, r.stderr)
    text = x509_text(crt)
    assert "Subject: O = Refuge, CN = node-a" in text
    assert "DNS:node-a" in text and "IP Address:127.0.0.1" in text
    assert "DNS:a.dr.example" in text and "IP Address:0:0:0:0:0:0:0:1" in text
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    # The key belongs to the certificate.
    pub_key = openssl("pkey", "-in", key, "-pubout")
    pub_crt = openssl("x509", "-in", crt, "-noout", "-pubkey")
    assert pub_key.returncode == 0 and pub_key.stdout == pub_crt.stdout


def test_validity_days(tmp_path):
    d = str(tmp_path)
    assert ctl("cert", "init", d).returncode == 0
    assert ctl("cert", "issue", "b", d).returncode == 0
    assert ctl("cert", "issue", "c", d, "--days=30").returncode == 0
    # Default 825 days: valid in 824 days, not in 826.
    crt = os.path.join(d, "b.crt")
    assert openssl("x509", "-in", crt, "-noout", "-checkend", str(824 * 86400)).returncode == 0
    assert openssl("x509", "-in", crt, "-noout", "-checkend", str(826 * 86400)).returncode != 0
    crt = os.path.join(d, "c.crt")
    assert openssl("x509", "-in", crt, "-noout", "-checkend", str(29 * 86400)).returncode == 0
    assert openssl("x509", "-in", crt, "-noout", "-checkend", str(31 * 86400)).returncode != 0
    # CA: ten years.
    ca = os.path.join(d, "ca.crt")
    assert openssl("x509", "-in", ca, "-noout", "-checkend", str(3649 * 86400)).returncode == 0
    assert openssl("x509", "-in", ca, "-noout", "-checkend", str(3651 * 86400)).returncode != 0


def test_refuses_overwrite(tmp_path):
    d = str(tmp_path)
    assert ctl("cert", "init", d).returncode == 0
    before = open(os.path.join(d, "ca.key")).read()
    r = ctl("cert", "init", d)
    assert r.returncode == 1
    assert "refusing to overwrite" in r.stderr
    assert open(os.path.join(d, "ca.key")).read() == before

    assert ctl("cert", "issue", "n1", d).returncode == 0
    crt = open(os.path.join(d, "n1.crt")).read()
    r = ctl("cert", "issue", "n1", d)
    assert r.returncode == 1 and "refusing to overwrite" in r.stderr
    assert open(os.path.join(d, "n1.crt")).read() == crt


def test_serials_are_random(tmp_path):
    d = str(tmp_path)
    assert ctl("cert", "init", d).returncode == 0
    serials = set()
    for n in ("s1", "s2", "s3"):
        assert ctl("cert", "issue", n, d).returncode == 0
        r = openssl("x509", "-in", os.path.join(d, n + ".crt"), "-noout", "-serial")
        serials.add(r.stdout.strip())
    assert len(serials) == 3
    assert all(len(s.split("=")[1]) >= 30 for s in serials)


def test_other_ca_does_not_verify(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert ctl("cert", "init", a).returncode == 0
    assert ctl("cert", "init", b).returncode == 0
    assert ctl("cert", "issue", "x", b).returncode == 0
    r = openssl("verify", "-CAfile", os.path.join(a, "ca.crt"), os.path.join(b, "x.crt"))
    assert r.returncode != 0


@pytest.mark.parametrize("args", [
    ["cert", "issue", "../evil", "DIR"],
    ["cert", "issue", "bad name", "DIR"],
    ["cert", "issue", "n", "DIR", "--ip", "999.1.1.1"],
    ["cert", "issue", "n", "DIR", "--dns", "a,IP:1.2.3.4"],
    ["cert", "issue", "n", "DIR", "--days", "0"],
    ["cert", "issue", "n", "DIR", "--days"],
    ["cert", "issue", "n", "DIR", "--bogus"],
])
def test_bad_arguments(tmp_path, args):
    d = str(tmp_path)
    assert ctl("cert", "init", d).returncode == 0
    r = ctl(*[d if a == "DIR" else a for a in args])
    assert r.returncode in (1, 2), r
    assert r.stderr.strip()
    assert sorted(os.listdir(d)) == ["ca.crt", "ca.key"]


def test_issue_without_ca(tmp_path):
    r = ctl("cert", "issue", "n", str(tmp_path))
    assert r.returncode == 1
    assert "cert init" in r.stderr
    assert os.listdir(str(tmp_path)) == []
