"""The `make demo` configuration (examples/demo.yaml) is one treaty accepts,
and it is the story scripts/demo tells: every route wants a token from the
development issuer."""

import subprocess

import yaml

import harness

DEMO = harness.REPO / "examples" / "demo.yaml"


def test_demo_configuration_passes_treaty_check():
    # Run from the repository root, as scripts/demo does: the file's
    # relative paths (jwks_file, state_dir) are relative to it.
    r = subprocess.run([harness.treaty_binary(), "check", "-c",
                        "examples/demo.yaml"], cwd=harness.REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    routes = yaml.safe_load(DEMO.read_text())["routes"]
    assert f"routes       {len(routes)}\n" in r.stdout, r.stdout


def test_demo_routes_all_require_a_dev_issuer_token():
    cfg = yaml.safe_load(DEMO.read_text())
    issuers = cfg["identity"]["issuers"]
    assert [i["jwks_file"] for i in issuers] == [
        "examples/dev-keys/jwks.json"]
    open_routes = [r["name"] for r in cfg["routes"]
                   if r.get("auth", "required") != "required"]
    assert open_routes == []
