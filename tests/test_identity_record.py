"""The bit-identity record of issue 26 (tools/identity_record.py): the outputs of ``analyze``, the
solver, the landscape maps, every profile's run names and the cells' initial weights, recorded
before the reorganisation, are unchanged. Bitwise on the machine the record was made on (its
``platform``); elsewhere the run names only (the tool's docstring says why)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "data" / "identity_before_issue26.json"


@pytest.mark.slow
def test_outputs_are_those_recorded_before_the_reorganisation():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "identity_record.py"), "--check", str(RECORD)],
                         capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.startswith("identical"), out.stdout[-3000:] + out.stderr[-3000:]


def test_the_check_can_fail(script):
    tool = script("tools/identity_record.py")
    old = json.loads(RECORD.read_text())
    new = json.loads(RECORD.read_text())
    assert tool.check(old, new) == []
    new["analyze"]["gru/critical/sz1.0/default"]["xi"][0] = float.fromhex(
        old["analyze"]["gru/critical/sz1.0/default"]["xi"][0]).__add__(1e-9).hex()
    assert tool.check(old, new) and "xi" in tool.check(old, new)[0]
    new = json.loads(RECORD.read_text())
    new["runs"]["ci"][0] = new["runs"]["ci"][0] + "x"
    new["platform"] = dict(old["platform"], cpu_flags="another")
    assert tool.check(old, new) == [f"runs/ci[0]: {old['runs']['ci'][0]!r} != {new['runs']['ci'][0]!r}"]
