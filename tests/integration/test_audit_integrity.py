"""The audit trail proves nobody edited it (issue 8), through the real
binary: signed checkpoints in the database and in an external file,
`treaty audit verify` naming each tampering with its exit code (edit,
delete, insert, swap; truncation and an older copy with --checkpoint),
OCSF export, the summary, and retention followed by verify.

Tampering is done the way an intruder with the database would: sqlite3
statements on the stopped gateway's audit.db."""

import base64
import hashlib
import json
import shutil
import sqlite3
import struct
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey)

import harness
from harness import bearer, py_mint
from test_audit_cli import RECORDS, write_db

ISSUER = {
    "name": "corp",
    "issuer": harness.DEV_ISS,
    "audiences": [harness.DEV_AUD],
    "algorithms": ["ES256"],
    "jwks_file": str(harness.DEV_KEYS / "jwks.json"),
}

EXIT = {"ok": 0, "error": 1, "usage": 2, "edited": 3, "deleted": 4,
        "reordered": 5, "inserted": 6, "truncated": 7, "rolled_back": 8,
        "bad_signature": 9}

CHAIN3 = ["agent:planner", "agent:mailbot", "agent:smtp"]


def config(backend_url, cp_file, **audit):
    cfg = harness.proxy_config(backend_url, path="/items/{rest...}",
                               route_name="items")
    cfg["identity"] = {"issuers": [ISSUER]}
    cfg["routes"][0]["auth"] = "optional"
    cfg["audit"] = dict({"checkpoint_every": 5,
                         "checkpoint_file": str(cp_file),
                         "flush_ms": 10}, **audit)
    return cfg


@pytest.fixture
def cp_file(tmp_path):
    d = tmp_path / "shipped"
    d.mkdir()
    return d / "checkpoints.jsonl"


def traffic(t, n=10, sub="alice", act=None):
    """n requests, alternately GET (one record) and POST (a decision and
    its completion: two records)."""
    tok = py_mint(sub, act=act or ["agent:planner", "agent:mailbot"])
    for i in range(n):
        if i % 2:
            r = t.request("POST", f"/items/{sub}-{i}", headers=bearer(tok),
                          data=b"{}")
        else:
            r = t.request("GET", f"/items/{sub}-{i}", headers=bearer(tok))
        assert r.status_code == 200, r.text


def run_audit(t, *args):
    return subprocess.run([t.binary, "audit", *args, "--state-dir",
                           str(t.state_dir)], capture_output=True,
                          text=True, timeout=60)


def verify(t, *args):
    return run_audit(t, "verify", *args)


def tamper(t, sql):
    db = sqlite3.connect(t.state_dir / "audit.db")
    db.executescript(sql)
    db.commit()
    db.close()


def rows(t, sql, args=()):
    db = sqlite3.connect(f"file:{t.state_dir}/audit.db?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def checkpoint_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()
            if '"treaty.audit.checkpoint"' in line]


@pytest.fixture
def trail(treaty, backend, cp_file):
    """A stopped gateway that wrote 15 records (checkpoints at 5, 10, 15)."""
    t = treaty(config(backend.url, cp_file))
    traffic(t)
    t.stop()
    assert rows(t, "SELECT max(seq) FROM audit") == [(15,)]
    return t


def assert_finding(r, name, *texts):
    assert r.returncode == EXIT[name], r.stdout + r.stderr
    for text in texts:
        assert text in r.stdout, r.stdout


# --- checkpoints ---------------------------------------------------------

def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_checkpoints_are_signed_into_the_database_and_the_external_file(
        trail, cp_file):
    lines = checkpoint_lines(cp_file)
    assert [(c["seq"], c["kind"]) for c in lines] == [
        (5, "periodic"), (10, "periodic"), (15, "periodic")]
    assert rows(trail, "SELECT seq, kind, hash FROM audit_checkpoint "
                "ORDER BY seq") == [(c["seq"], c["kind"], c["hash"])
                                    for c in lines]
    hashes = dict(rows(trail, "SELECT seq, hash FROM audit"))
    keys = sorted((trail.state_dir / "audit-keys").glob("key-*.pem"))
    assert len(keys) == 1
    assert keys[0].stat().st_mode & 0o777 == 0o600
    pub = serialization.load_pem_private_key(
        keys[0].read_bytes(), None).public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw,
                           serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(
        ('{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x).encode()).digest()
    ).rstrip(b"=").decode()
    for c in lines:
        assert c["hash"] == hashes[c["seq"]]
        assert c["kid"] == kid and c["alg"] == "EdDSA"
        # The documented signed bytes, checked by an independent verifier.
        msg = (b"TRC1" + bytes([0]) + struct.pack(">Q", c["seq"]) +
               bytes.fromhex(c["hash"]) + struct.pack(">q", c["time_ms"]))
        Ed25519PublicKey.from_public_bytes(raw).verify(
            b64url_decode(c["sig"]), msg)
    r = verify(trail, "--checkpoint", str(cp_file))
    assert_finding(r, "ok", "intact: 15 records",
                   "3 in the database, 3 in", "last good checkpoint: seq 15")


def test_clean_stop_writes_a_shutdown_checkpoint_of_the_head(
        treaty, backend, cp_file):
    t = treaty(config(backend.url, cp_file))
    traffic(t, n=4)            # 6 records: periodic at 5, shutdown at 6
    t.stop()
    assert [(c["seq"], c["kind"]) for c in checkpoint_lines(cp_file)] == [
        (5, "periodic"), (6, "shutdown")]
    r = verify(t, "--checkpoint", str(cp_file))
    assert_finding(r, "ok", "last good checkpoint: seq 6 (shutdown")


def test_checkpoints_on_stdout_for_a_log_shipper(treaty, backend,
                                                 tmp_path):
    t = treaty(config(backend.url, "-"))
    traffic(t, n=4)
    t.stop()
    out = t.workdir / "treaty.stdout"
    assert [c["seq"] for c in checkpoint_lines(out)] == [5, 6]
    assert_finding(verify(t, "--checkpoint", str(out)), "ok")


def test_checkpoint_file_inside_state_dir_is_refused(tmp_path, backend,
                                                     treaty_bin):
    t = harness.Treaty(tmp_path / "t", config(backend.url, "x"),
                       binary=treaty_bin)
    t.write_config(config(backend.url, t.state_dir / "checkpoints.jsonl"))
    with pytest.raises(RuntimeError):
        t.start()
    assert "inside state_dir" in t.stderr()


# --- tampering -------------------------------------------------------------

def test_edited_field_exits_3(trail, cp_file):
    tamper(trail, "UPDATE audit SET actor='agent:evil' WHERE seq=7")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)), "edited",
                   "record 7 was edited", "last good record: 6",
                   "last good checkpoint: seq 5")


def test_deleted_row_exits_4(trail, cp_file):
    tamper(trail, "DELETE FROM audit WHERE seq=7")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)), "deleted",
                   "seq 7..7 missing", "last good record: 6")


def test_inserted_row_exits_6(trail, cp_file):
    # Make room at 7 and slip in a copy of record 6 with another path.
    tamper(trail, """
        UPDATE audit SET seq = -seq WHERE seq >= 7;
        UPDATE audit SET seq = 1 - seq WHERE seq < 0;
        CREATE TEMP TABLE forged AS SELECT * FROM audit WHERE seq = 6;
        UPDATE forged SET seq = 7, path = '/items/forged';
        INSERT INTO audit SELECT * FROM forged;""")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)), "inserted",
                   "1 record(s) inserted at seq 7")


def test_swapped_rows_exit_5(trail, cp_file):
    tamper(trail, """
        UPDATE audit SET seq = -6 WHERE seq = 6;
        UPDATE audit SET seq = 6 WHERE seq = 9;
        UPDATE audit SET seq = 9 WHERE seq = -6;""")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)), "reordered",
                   "record 6 is out of order")


def test_truncated_tail_exits_7(trail, cp_file):
    tamper(trail, "DELETE FROM audit WHERE seq > 12")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)), "truncated",
                   "TRUNCATED", "ends at record 12", "covers record 15",
                   "last good checkpoint: seq 10")


def test_thorough_truncation_needs_the_external_file(trail, cp_file):
    # Deleting the checkpoint rows too leaves a database consistent with
    # itself: only the external file shows records are missing.  It is
    # then told as an older copy (docs/audit.md, "Verifying").
    tamper(trail, "DELETE FROM audit WHERE seq > 12;"
                  "DELETE FROM audit_checkpoint WHERE seq > 12")
    assert_finding(verify(trail), "ok")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)),
                   "rolled_back", "covers record 15")


def copy_db(src_dir, dst_dir):
    dst_dir.mkdir(exist_ok=True)
    for p in dst_dir.glob("audit.db*"):
        p.unlink()
    for p in src_dir.glob("audit.db*"):
        shutil.copy2(p, dst_dir / p.name)


def test_older_copy_of_the_database_exits_8(trail, backend, cp_file,
                                             tmp_path):
    old = tmp_path / "old-copy"
    copy_db(trail.state_dir, old)
    trail.start()
    traffic(trail)             # records 16..30, checkpoints 20, 25, 30
    trail.stop()
    copy_db(old, trail.state_dir)
    # Alone the old copy is a perfectly good trail ...
    assert_finding(verify(trail), "ok", "intact: 15 records")
    # ... but the shipped checkpoints know the trail went further.
    assert_finding(verify(trail, "--checkpoint", str(cp_file)),
                   "rolled_back", "ROLLED BACK", "covers record 20",
                   "last good checkpoint: seq 15")


def test_older_copy_written_on_is_a_fork(trail, backend, cp_file,
                                         tmp_path):
    old = tmp_path / "old-copy"
    copy_db(trail.state_dir, old)
    trail.start()
    traffic(trail)
    trail.stop()
    copy_db(old, trail.state_dir)
    trail.start()              # the gateway goes on from the old copy
    traffic(trail, sub="bob")
    trail.stop()
    r = verify(trail, "--checkpoint", str(cp_file))
    assert_finding(r, "rolled_back", "is not the one signed")


def test_forged_checkpoint_line_exits_9(trail, cp_file):
    lines = cp_file.read_text().splitlines()
    doc = json.loads(lines[2])
    doc["hash"] = "0" * 64
    lines[2] = json.dumps(doc)
    cp_file.write_text("\n".join(lines) + "\n")
    assert_finding(verify(trail, "--checkpoint", str(cp_file)),
                   "bad_signature", "BAD signature", "seq 15")


def test_untrusted_key_exits_9(trail, cp_file, tmp_path):
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    str(other)], check=True, capture_output=True)
    r = verify(trail, "--key", str(other))
    assert_finding(r, "bad_signature", "unknown kid")
    pem = tmp_path / "pub.pem"
    key = sorted((trail.state_dir / "audit-keys").glob("key-*.pem"))[0]
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out",
                    str(pem)], check=True, capture_output=True)
    assert_finding(verify(trail, "--key", str(pem), "--checkpoint",
                          str(cp_file)), "ok")


# --- export and summary ------------------------------------------------------

REQUIRED = ["class_uid", "category_uid", "activity_id", "type_uid", "time",
            "severity_id", "status_id", "metadata", "actor", "api",
            "src_endpoint", "http_request"]


def test_export_ocsf_api_activity_with_a_three_level_chain(
        treaty, backend, cp_file):
    t = treaty(config(backend.url, cp_file))
    tok = py_mint("alice", act=CHAIN3)
    assert t.request("POST", "/items/send", headers=bearer(tok),
                     data=b"{}").status_code == 200
    assert t.request("GET", "/items/inbox",
                     headers=bearer(py_mint("alice"))).status_code == 200
    t.stop()
    r = run_audit(t, "export", "--format", "ocsf")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(events) == 2    # the completion is folded into its decision
    for e in events:
        missing = [k for k in REQUIRED if k not in e]
        assert not missing, missing
        assert e["class_uid"] == 6003 and e["category_uid"] == 6
        assert e["type_uid"] == 600300 + e["activity_id"]
        assert isinstance(e["time"], int) and e["time"] > 1.6e12
        assert e["metadata"]["product"]["name"] == "treaty"
        assert e["metadata"]["product"]["vendor_name"] == "treaty"
        assert e["metadata"]["product"]["version"]
        assert e["metadata"]["version"].startswith("1.")
        assert e["actor"]["user"] == {"uid": "alice", "name": "alice",
                                      "domain": "corp"}
        assert e["api"]["request"]["uid"] == e["http_request"]["uid"]
        assert e["src_endpoint"]["ip"] == "127.0.0.1"
        assert e["status_id"] == 1 and e["severity_id"] == 1
    post, get = events
    assert post["activity_id"] == 1 and get["activity_id"] == 2
    assert post["api"]["operation"] == "items"
    assert post["http_request"]["http_method"] == "POST"
    assert post["http_request"]["url"]["path"] == "/items/send"
    assert post["http_response"]["code"] == 200
    # The chain round-trips: current actor first, in order, all three.
    assert post["actor"]["app_name"] == "agent:planner"
    assert post["unmapped"]["delegation_chain"] == CHAIN3
    assert post["unmapped"]["caller_class"] == "agent"
    assert post["unmapped"]["completed_by_seq"] == post["unmapped"]["seq"] + 1
    assert "app_name" not in get["actor"]
    assert get["unmapped"]["caller_class"] == "human"
    q = run_audit(t, "query", "--json", "--actor", "agent:smtp")
    assert [json.loads(line)["delegation_chain"]
            for line in q.stdout.splitlines()] == [CHAIN3]
    # Filters apply to export too.
    r = run_audit(t, "export", "--actor", "agent:mailbot")
    assert [json.loads(line)["unmapped"]["seq"]
            for line in r.stdout.splitlines()] == [post["unmapped"]["seq"]]


def test_summary_says_what_each_actor_did_for_the_principal(
        treaty, backend, cp_file):
    t = treaty(config(backend.url, cp_file))
    traffic(t, n=3)                                   # via the chain
    traffic(t, n=1, act=["agent:calendar"])           # another agent
    assert t.request("GET", "/items/mine", headers=bearer(
        py_mint("alice"))).status_code == 200         # alice herself
    traffic(t, n=2, sub="bob")                        # not alice's
    t.stop()
    r = run_audit(t, "summary", "--principal", "alice", "--since", "1h",
                  "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["principal"] == "alice" and doc["total"] == 5
    by_actor = {a["actor"]: a for a in doc["actors"]}
    assert set(by_actor) == {"agent:planner", "agent:calendar", "alice"}
    planner = by_actor["agent:planner"]
    assert planner["delegation_chain"] == ["agent:planner", "agent:mailbot"]
    assert planner["caller_class"] == "agent"
    assert planner["total"] == 3
    assert planner["routes"] == [{"route": "items", "allow": 3, "deny": 0,
                                  "error": 0}]
    assert by_actor["alice"]["caller_class"] == "human"
    table = run_audit(t, "summary", "--principal", "alice")
    assert table.returncode == 0, table.stderr
    assert "on behalf of alice: 5 request(s)" in table.stdout
    assert "agent:planner > agent:mailbot: 3 request(s)" in table.stdout
    assert "alice (the principal, directly): 1 request(s)" in table.stdout


# --- retention -------------------------------------------------------------

def test_retention_prunes_old_records_and_verify_still_passes(
        tmp_path, treaty, backend, cp_file):
    # A trail written in 2023 (by the documented format, schema v1); the
    # gateway migrates it and retention removes what is older than a day.
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    write_db(state / "audit.db", RECORDS)
    t = treaty(dict(config(backend.url, cp_file, retention_days=1),
                    state_dir=str(state)))
    # The first batch runs a second after start; the newest record stays.
    harness.wait_until(lambda: rows(t, "SELECT min(seq) FROM audit") ==
                       [(len(RECORDS),)], timeout=15,
                       what="old records pruned")
    anchors = rows(t, "SELECT seq FROM audit_checkpoint WHERE "
                   "kind='anchor'")
    assert anchors == [(len(RECORDS) - 1,)]
    traffic(t, n=4)
    t.stop()
    r = verify(t, "--checkpoint", str(cp_file))
    assert_finding(r, "ok", "starts after the signed anchor at seq 4")
    assert [c["kind"] for c in checkpoint_lines(cp_file)][0] == "anchor"
    # Deleting the oldest remaining record is still caught.
    tamper(t, "DELETE FROM audit WHERE seq = 5")
    assert_finding(verify(t, "--checkpoint", str(cp_file)), "deleted",
                   "records 5..5 are missing")


def test_verify_while_the_gateway_writes_finds_nothing(treaty, backend,
                                                       cp_file):
    t = treaty(config(backend.url, cp_file, checkpoint_every=3))
    stop = threading.Event()

    def load():
        while not stop.is_set():
            traffic(t, n=2)

    th = threading.Thread(target=load)
    th.start()
    try:
        for _ in range(5):
            r = verify(t, "--checkpoint", str(cp_file))
            assert_finding(r, "ok")
    finally:
        stop.set()
        th.join()
