"""`treaty audit` on a database written by an independent implementation
of the documented format (docs/audit.md): if this Python encoder and the
C one disagree, verify fails.  Covers verify's exit codes per tampering,
query filters (actor anywhere in the chain), tail and argument errors."""

import hashlib
import json
import sqlite3
import struct
import subprocess

import pytest

COLUMNS = [
    "kind", "time_ms", "request_id", "client_addr", "principal_issuer",
    "principal_sub", "actor", "delegation_chain", "client_id", "token_id",
    "token_hash", "token_verified", "route", "tool", "method", "path",
    "decision", "reason", "policy_rule", "limiter", "idem_key_hash",
    "idem_replay", "precondition", "status", "latency_us", "bytes",
    "config_hash", "stripped_headers", "completes_seq", "count",
]
INTEGER = {"kind", "time_ms", "token_verified", "decision", "idem_replay",
           "status", "latency_us", "bytes", "completes_seq", "count"}
KINDS = {"request": 0, "decision": 1, "completion": 2, "refused_tokens": 3}
DECISIONS = {"allow": 1, "deny": 2, "error": 3}

SCHEMA = """
CREATE TABLE audit (seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL, kind TEXT NOT NULL, time_ms INTEGER NOT NULL,
  request_id TEXT, client_addr TEXT, principal_issuer TEXT,
  principal_sub TEXT, actor TEXT, delegation_chain TEXT, client_id TEXT,
  token_id TEXT, token_hash TEXT, token_verified INTEGER, route TEXT,
  tool TEXT, method TEXT, path TEXT, decision TEXT, reason TEXT,
  policy_rule TEXT, limiter TEXT, idem_key_hash TEXT, idem_replay INTEGER,
  precondition TEXT, status INTEGER, latency_us INTEGER, bytes INTEGER,
  config_hash TEXT, stripped_headers TEXT, completes_seq INTEGER,
  count INTEGER);
CREATE TABLE audit_actor (actor TEXT NOT NULL, seq INTEGER NOT NULL,
  depth INTEGER NOT NULL, PRIMARY KEY (actor, seq)) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


def canonical(seq, rec):
    out = b"TRA1" + struct.pack(">Q", seq)
    for col in COLUMNS:
        v = rec.get(col)
        if col == "kind":
            v = KINDS[v]
        elif col == "decision" and v is not None:
            v = DECISIONS[v]
        if v is None:
            out += b"\x00"
        elif col in INTEGER:
            out += b"\x02" + struct.pack(">q", int(v))
        else:
            b = v.encode()
            out += b"\x01" + struct.pack(">I", len(b)) + b
    return out


RECORDS = [
    dict(kind="request", time_ms=1700000000000, request_id="r1",
         client_addr="192.0.2.1", principal_issuer="corp",
         principal_sub="alice", actor="agent:planner",
         delegation_chain='["agent:planner","agent:mailbot"]',
         token_verified=1, route="mail-read", method="GET",
         path="/users/alice/mail/inbox", decision="allow", status=200,
         latency_us=1800, bytes=512),
    dict(kind="request", time_ms=1700000060000, request_id="r2",
         principal_issuer="corp", principal_sub="bob",
         actor="agent:mailbot", delegation_chain='["agent:mailbot"]',
         token_verified=1, route="mail-read", method="GET",
         path="/users/bob/mail/inbox", decision="allow", status=200,
         latency_us=900, bytes=10),
    dict(kind="decision", time_ms=1700000120000, request_id="r3",
         principal_issuer="corp", principal_sub="alice",
         actor="agent:mailbot", delegation_chain='["agent:mailbot"]',
         token_verified=1, route="mail-send", method="POST",
         path="/users/alice/mail/send", decision="allow",
         idem_key_hash="ab", stripped_headers='["x-principal"]'),
    dict(kind="completion", time_ms=1700000120040, request_id="r3",
         completes_seq=3, status=201, latency_us=40000, bytes=77),
    dict(kind="request", time_ms=1700000180000, request_id="r4",
         client_addr="192.0.2.9", decision="deny", reason="missing_token",
         route="mail-read", method="GET", path="/users/alice/mail/inbox",
         status=401, latency_us=50, bytes=200),
]


def write_db(path, records):
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    prev = bytes(32)
    for seq, rec in enumerate(records, start=1):
        h = hashlib.sha256(prev + canonical(seq, rec)).digest()
        cols = ["seq", "prev_hash", "hash"] + COLUMNS
        vals = [seq, prev.hex(), h.hex()] + [rec.get(c) for c in COLUMNS]
        db.execute(f"INSERT INTO audit ({','.join(cols)}) VALUES "
                   f"({','.join('?' * len(cols))})", vals)
        for depth, actor in enumerate(
                json.loads(rec.get("delegation_chain") or "[]")):
            db.execute("INSERT INTO audit_actor VALUES (?,?,?)",
                       (actor, seq, depth))
        prev = h
    db.commit()
    db.close()


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    write_db(d / "audit.db", RECORDS)
    return d


def audit(treaty_bin, *args):
    return subprocess.run([treaty_bin, "audit", *args], capture_output=True,
                          text=True, timeout=30)


def tamper(state_dir, sql):
    db = sqlite3.connect(state_dir / "audit.db")
    db.executescript(sql)
    db.commit()
    db.close()


def test_verify_accepts_a_chain_built_from_the_documented_format(
        treaty_bin, state_dir):
    r = audit(treaty_bin, "verify", "--state-dir", str(state_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "intact: 5 records" in r.stdout


def test_verify_exit_3_names_an_edited_record(treaty_bin, state_dir):
    tamper(state_dir, "UPDATE audit SET actor='agent:x' WHERE seq=2")
    r = audit(treaty_bin, "verify", "--state-dir", str(state_dir))
    assert r.returncode == 3
    assert "record 2" in r.stdout and "edited" in r.stdout


def test_verify_exit_4_names_a_deleted_record(treaty_bin, state_dir):
    tamper(state_dir, "DELETE FROM audit WHERE seq=3")
    r = audit(treaty_bin, "verify", "--state-dir", str(state_dir))
    assert r.returncode == 4
    assert "record 4" in r.stdout


def test_verify_exit_5_names_swapped_records(treaty_bin, state_dir):
    # Swap rows 2 and 3 whole, keeping the numbers in order.
    tamper(state_dir, """
        UPDATE audit SET seq=-2 WHERE seq=2;
        UPDATE audit SET seq=2 WHERE seq=3;
        UPDATE audit SET seq=3 WHERE seq=-2;""")
    r = audit(treaty_bin, "verify", "--state-dir", str(state_dir))
    assert r.returncode == 5
    assert "record 2" in r.stdout


def query_json(treaty_bin, state_dir, *args):
    r = audit(treaty_bin, "query", "--state-dir", str(state_dir), "--json",
              *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_query_actor_matches_anywhere_in_the_chain(treaty_bin, state_dir):
    rows = query_json(treaty_bin, state_dir, "--actor", "agent:mailbot")
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["delegation_chain"] == ["agent:planner", "agent:mailbot"]


def test_query_merges_completion_into_its_decision(treaty_bin, state_dir):
    rows = query_json(treaty_bin, state_dir, "--principal", "alice",
                      "--route", "mail-send")
    assert len(rows) == 1
    assert rows[0]["kind"] == "decision"
    assert rows[0]["status"] == 201
    assert rows[0]["completed_by_seq"] == 4
    assert rows[0]["latency_ms"] == 40.0
    assert rows[0]["stripped_headers"] == ["x-principal"]


def test_query_by_decision_and_time(treaty_bin, state_dir):
    rows = query_json(treaty_bin, state_dir, "--decision", "deny")
    assert [(r["seq"], r["principal_sub"]) for r in rows] == [(5, None)]
    rows = query_json(treaty_bin, state_dir, "--since",
                      "2023-11-14T22:14:00Z", "--until",
                      "2023-11-14T22:16:00Z")
    assert [r["seq"] for r in rows] == [2, 3]
    assert query_json(treaty_bin, state_dir, "--since", "1h") == []


def test_tail_shows_raw_rows_newest_last(treaty_bin, state_dir):
    r = audit(treaty_bin, "tail", "-n", "2", "--state-dir", str(state_dir))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("4 ") and "completion of #3" in lines[0]
    assert lines[1].startswith("5 ") and "missing_token" in lines[1]


def test_argument_errors_exit_2_and_missing_db_exits_1(treaty_bin,
                                                       tmp_path):
    assert audit(treaty_bin, "query").returncode == 2
    assert audit(treaty_bin, "query", "--state-dir", str(tmp_path),
                 "--since", "yesterday").returncode == 2
    assert audit(treaty_bin, "bogus").returncode == 2
    assert audit(treaty_bin, "export", "--format", "csv", "--state-dir",
                 str(tmp_path)).returncode == 2
    assert audit(treaty_bin, "summary", "--state-dir",
                 str(tmp_path)).returncode == 2, "needs --principal"
    assert audit(treaty_bin, "verify", "--actor", "x", "--state-dir",
                 str(tmp_path)).returncode == 2, "verify takes no filters"
    assert audit(treaty_bin, "export", "--state-dir",
                 str(tmp_path)).returncode == 1
    r = audit(treaty_bin, "tail", "--state-dir", str(tmp_path))
    assert r.returncode == 1
    assert "no audit database" in r.stderr
    r = audit(treaty_bin, "--help")
    assert r.returncode == 0 and "verify" in r.stdout


def test_config_file_locates_the_database(treaty_bin, state_dir, tmp_path):
    cfg = tmp_path / "treaty.yaml"
    cfg.write_text(f"""listen: 127.0.0.1:18080
state_dir: {state_dir}
upstreams:
  app:
    url: http://127.0.0.1:18081
routes:
  - name: all
    match: {{ methods: [GET], path: "/{{rest...}}" }}
    upstream: app
    auth: none
""")
    r = audit(treaty_bin, "verify", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "intact: 5 records" in r.stdout
