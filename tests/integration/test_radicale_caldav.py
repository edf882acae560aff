"""A real CalDAV server (Radicale, Debian) driven through treaty by a real
CalDAV client (the caldav library), as an agent acting for a person
(issue 3): WebDAV methods pass through, the bearer token is verified and
replaced by the service's own credential before Radicale (which answers a
bearer token it does not know with 401), and the access log names the
principal and actor."""

import base64
import shutil
import uuid

import caldav
import pytest
import requests

import harness
from harness import py_mint

DAV_METHODS = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PROPFIND",
               "PROPPATCH", "REPORT", "MKCOL", "MKCALENDAR", "MOVE", "COPY"]


@pytest.fixture
def radicale(tmp_path):
    if not shutil.which("radicale"):
        pytest.skip("radicale not installed")
    # Radicale knows its own users (htpasswd); treaty verifies the agent's
    # bearer token and replaces it with the service credential.
    users = tmp_path / "users"
    users.write_text("alice:s3cret-for-tests\n")
    url, proc = harness.start_radicale(
        tmp_path, f"[auth]\ntype = htpasswd\nhtpasswd_filename = {users}\n"
                  "htpasswd_encryption = plain\n")
    try:
        yield url
    finally:
        harness.stop_process(proc)


class Bearer(requests.auth.AuthBase):
    """The caldav library takes a requests auth object: a bearer token."""

    def __init__(self, token):
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def caldav_config(upstream, tmp_path):
    cred = tmp_path / "radicale-credential"
    cred.write_text("Basic " + base64.b64encode(
        b"alice:s3cret-for-tests").decode())
    cred.chmod(0o600)
    issuer = {"name": "corp", "issuer": harness.DEV_ISS,
              "audiences": [harness.DEV_AUD], "algorithms": ["ES256"],
              "jwks_file": str(harness.DEV_KEYS / "jwks.json")}
    route = {"upstream": "radicale", "match": {"methods": DAV_METHODS}}
    return {
        "upstreams": {"radicale": {"url": upstream,
                                   "authorization": "replace",
                                   "authorization_file": str(cred)}},
        "identity": {"issuers": [issuer]},
        "routes": [dict(route, name="root",
                        match={"methods": DAV_METHODS, "path": "/"}),
                   dict(route, name="dav",
                        match={"methods": DAV_METHODS,
                               "path": "/{rest...}"})],
    }


EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//treaty tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261203T120000Z
DTSTART:20261204T090000Z
DTEND:20261204T100000Z
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""


def test_caldav_client_through_treaty_as_an_agent(treaty, radicale,
                                                  tmp_path):
    t = treaty(caldav_config(radicale, tmp_path))
    tok = py_mint("alice", act=["agent:scheduler"])
    client = caldav.DAVClient(url=t.url + "/alice/", auth=Bearer(tok))
    principal = client.principal()
    cal = principal.make_calendar(name="work",
                                  cal_id="work-" + uuid.uuid4().hex[:8])
    uids = [str(uuid.uuid4()) for _ in range(3)]
    for i, uid in enumerate(uids):
        cal.save_event(EVENT.format(uid=uid, summary=f"standup {i}"))
    events = cal.events()
    assert len(events) == 3
    summaries = sorted(str(e.vobject_instance.vevent.summary.value)
                       for e in events)
    assert summaries == ["standup 0", "standup 1", "standup 2"]
    events[0].delete()
    assert len(cal.events()) == 2

    want = {"PROPFIND", "MKCALENDAR", "PUT", "REPORT", "DELETE"}
    harness.wait_until(
        lambda: want <= {line["method"] for line in t.access_log_lines()},
        timeout=5, what="every DAV method in the access log")
    lines = t.access_log_lines()
    for line in lines:
        assert line["principal"] == "alice"
        assert line["actor"] == "agent:scheduler"


def test_caldav_without_a_token_is_refused_before_radicale(treaty,
                                                           radicale,
                                                           tmp_path):
    t = treaty(caldav_config(radicale, tmp_path))
    client = caldav.DAVClient(url=t.url + "/alice/")
    with pytest.raises(caldav.lib.error.AuthorizationError):
        client.principal()
