"""The configuration shown in the README is one treaty accepts."""

import re
import subprocess

import harness


def test_readme_configuration_example_passes_treaty_check(tmp_path):
    readme = (harness.REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    # Only paths that exist on this machine differ from the README.
    text = (block
            .replace("/etc/treaty/idp-jwks.json",
                     str(harness.DEV_KEYS / "jwks.json"))
            .replace("/var/lib/treaty", str(tmp_path / "state"))
            .replace("/var/log/treaty/access.log",
                     str(tmp_path / "access.log")))
    cfg = tmp_path / "readme.yaml"
    cfg.write_text(text)
    r = subprocess.run([harness.treaty_binary(), "check", "-c", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "routes       2" in r.stdout
