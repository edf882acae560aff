"""pytest fixtures for the integration tests (see harness.py for the API).

Fixtures:
  treaty_bin      path of the gateway binary ($TREATY_BIN or ./treaty)
  sanitizer       True under `make san` (TREATY_SANITIZER=1)
  treaty          factory: treaty(config, **Treaty kwargs) -> started Treaty
  backend         a started ScriptedBackend
  backend_factory factory: backend_factory(**kw) -> started ScriptedBackend
  json_server     factory: json_server(db="calendar.json", **kw) -> started
  dev_keys        path of examples/dev-keys

Marker:
  @pytest.mark.timing   the test asserts on wall-clock time; skipped under
                        sanitizers (TREATY_SANITIZER=1).

Everything a factory started is stopped at teardown; a treaty instance
still running then must exit 0 on SIGTERM with no sanitizer report, or the
test errors.
"""

import os

import pytest

import harness


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "timing: asserts on wall-clock time; skipped under sanitizers")


def pytest_collection_modifyitems(config, items):
    if not harness.SANITIZER:
        return
    skip = pytest.mark.skip(reason="timing assertion under sanitizers")
    for item in items:
        if "timing" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def treaty_bin():
    path = harness.treaty_binary()
    if not os.access(path, os.X_OK):
        pytest.fail(f"treaty binary {path} missing: run `make` "
                    f"(or set TREATY_BIN)")
    return path


@pytest.fixture(scope="session")
def sanitizer():
    return harness.SANITIZER


@pytest.fixture(scope="session")
def dev_keys():
    return harness.DEV_KEYS


@pytest.fixture
def treaty(tmp_path, treaty_bin):
    started = []

    def make(config, **kw):
        kw.setdefault("binary", treaty_bin)
        t = harness.Treaty(tmp_path / f"treaty{len(started)}", config, **kw)
        started.append(t)
        return t.start()

    yield make
    errors = []
    for t in started:
        try:
            if t.running:
                t.stop()
            else:
                # It exited or was killed by the test; a sanitizer report
                # left behind still fails the test.
                t.assert_no_sanitizer_report()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors))


@pytest.fixture
def backend_factory():
    started = []

    def make(**kw):
        b = harness.ScriptedBackend(**kw).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def backend(backend_factory):
    return backend_factory()


@pytest.fixture
def json_server(tmp_path):
    started = []

    def make(db="calendar.json", **kw):
        j = harness.JsonServer(tmp_path / f"json{len(started)}", db, **kw)
        started.append(j)
        return j.start()

    yield make
    for j in started:
        j.stop()
