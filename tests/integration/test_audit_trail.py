"""The audit trail through the real gateway (issue 4): the state_dir lock,
kill -9 under concurrent mutating load, a full file system (a file size
limit) failing mutations closed and recovering, and the trail answering
"who did what for whom"."""

import json
import sqlite3
import subprocess
import threading

import pytest
import requests

import harness
from harness import py_mint, bearer

ISSUER = {
    "name": "corp",
    "issuer": harness.DEV_ISS,
    "audiences": [harness.DEV_AUD],
    "algorithms": ["ES256"],
    "jwks_file": str(harness.DEV_KEYS / "jwks.json"),
}


def items_config(upstream_url, **audit):
    cfg = harness.proxy_config(upstream_url, path="/items/{rest...}",
                               route_name="items")
    cfg["identity"] = {"issuers": [ISSUER]}
    cfg["routes"][0]["auth"] = "optional"
    if audit:
        cfg["audit"] = audit
    return cfg


def rows(state_dir, sql, args=()):
    db = sqlite3.connect(f"file:{state_dir}/audit.db?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_second_instance_on_the_same_state_dir_is_refused(
        tmp_path, treaty, backend):
    first = treaty(items_config(backend.url))
    second = harness.Treaty(tmp_path / "second", items_config(backend.url))
    second.write_config(dict(items_config(backend.url),
                             state_dir=str(first.state_dir)))
    with pytest.raises(RuntimeError):
        second.start()
    assert f"in use by another treaty (pid {first.pid})" in second.stderr()
    assert first.running


def test_state_dir_and_audit_files_are_private(treaty, backend):
    t = treaty(items_config(backend.url))
    assert t.request("GET", "/items/1").status_code == 200
    assert (t.state_dir.stat().st_mode & 0o777) == 0o700
    for name in ("audit.db", "lock"):
        assert ((t.state_dir / name).stat().st_mode & 0o777) == 0o600


def test_every_acknowledged_mutation_survives_kill_9(treaty, backend):
    t = treaty(items_config(backend.url))
    acked, stop = [], threading.Event()
    lock = threading.Lock()

    def client(n):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            path = f"/items/c{n}-{i}"
            i += 1
            try:
                r = s.post(t.url + path, data=b"x", timeout=5)
            except requests.RequestException:
                return
            if 200 <= r.status_code < 300:
                with lock:
                    acked.append(path)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    harness.wait_until(lambda: len(acked) >= 300, timeout=30,
                       what="300 acknowledged POSTs")
    t.kill9()
    stop.set()
    for th in threads:
        th.join()
    with lock:
        done = list(acked)
    recorded = {p for (p,) in rows(
        t.state_dir, "SELECT path FROM audit WHERE kind='decision'")}
    missing = [p for p in done if p not in recorded]
    assert not missing, f"{len(missing)} acknowledged without a record"
    verify = subprocess.run([t.binary, "audit", "verify", "--state-dir",
                             str(t.state_dir)], capture_output=True,
                            text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_who_did_what_on_whose_behalf(treaty, backend):
    t = treaty(items_config(backend.url))
    tok = py_mint("alice", act=["agent:planner", "agent:mailbot"])
    r = t.request("POST", "/items/send", headers=bearer(tok), data=b"{}")
    assert r.status_code == 200
    r = t.request("GET", "/items/inbox", headers=bearer(tok))
    assert r.status_code == 200
    t.stop()
    q = subprocess.run([t.binary, "audit", "query", "--state-dir",
                        str(t.state_dir), "--principal", "alice",
                        "--actor", "agent:mailbot", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert q.returncode == 0, q.stderr
    recs = [json.loads(line) for line in q.stdout.splitlines()]
    assert [(r["method"], r["path"]) for r in recs] == [
        ("POST", "/items/send"), ("GET", "/items/inbox")]
    for rec in recs:
        assert rec["principal_issuer"] == "corp"
        assert rec["actor"] == "agent:planner"
        assert rec["delegation_chain"] == ["agent:planner", "agent:mailbot"]
        assert rec["token_verified"] is True
        assert rec["status"] == 200
        assert rec["decision"] == "allow"
    assert recs[0]["kind"] == "decision" and recs[0]["completed_by_seq"]


def test_file_size_limit_refuses_mutations_and_recovers(tmp_path, treaty,
                                                        backend,
                                                        treaty_bin):
    # A file size limit stands in for a full disk.  SIGXFSZ is ignored so
    # writes fail with EFBIG instead of killing; a wrapper sets both up
    # because subprocess resets SIGXFSZ to the default in its children.
    wrapper = tmp_path / "treaty-fsize"
    wrapper.write_text("#!/bin/sh\ntrap '' XFSZ\n"
                       f"exec prlimit --fsize={1 << 20}:unlimited "
                       f'{treaty_bin} "$@"\n')
    wrapper.chmod(0o755)
    t = treaty(items_config(backend.url), binary=str(wrapper))
    big = "/items/" + "p" * 3000
    statuses = []
    for i in range(2000):
        r = t.request("POST", f"{big}{i}", data=b"x")
        statuses.append(r.status_code)
        if r.status_code == 503:
            break
    assert statuses[0] == 200
    assert statuses[-1] == 503, "the file size limit was never reached"
    assert r.headers.get("Content-Type", "").startswith(
        "application/problem+json")
    assert "audit" in r.json()["type"]
    assert t.admin("/readyz").status_code != 200
    assert t.running

    subprocess.run(["prlimit", f"--pid={t.pid}",
                    "--fsize=unlimited:unlimited"], check=True)
    harness.wait_until(lambda: t.admin("/readyz").status_code == 200,
                       timeout=20, what="audit store back")
    assert t.request("POST", "/items/after", data=b"x").status_code == 200
    t.stop()
    verify = subprocess.run([t.binary, "audit", "verify", "--state-dir",
                             str(t.state_dir)], capture_output=True,
                            text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
