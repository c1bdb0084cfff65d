"""The adversarial suite under pytest: every generated bad input must end CLEAR (a clear error) or OK (a
documented behaviour, checked). See harness.py for the classes and docs/guarantees.md for what is promised.

All cases run once, in worker processes with a memory limit and per-case timeouts (about 15-30 s for ~750
cases on 2 busy cores); each case is then one test here, so a failure names the case and what happened.
`python tests/adversarial/run.py -v` runs the same cases outside pytest and prints the totals per class.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import pickles  # noqa: E402

CASES = harness.all_cases()
pytestmark = pytest.mark.slow  # one shared run of all cases, 15-30 s


@pytest.fixture(scope="module")
def results():
    return {r["id"]: r for r in harness.run_cases(CASES, jobs=2)}


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_case(results, case_id):
    r = results[case_id]
    assert r["cls"] in harness.GOOD, f"{r['cls']}: {r['detail']}"


def test_totals(results, request):
    """Print and record the totals per class (in pytest's cache: minivivit/adversarial-totals)."""
    listed = list(results.values())
    table = harness.format_totals(listed)
    print("\n" + table)
    totals = harness.totals(listed)
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None:
        cache.set("minivivit/adversarial-totals", totals)
    if os.environ.get("MINIVIVIT_ADVERSARIAL_REPORT"):
        Path(os.environ["MINIVIVIT_ADVERSARIAL_REPORT"]).write_text(json.dumps({"totals": totals,
                                                                               "results": listed}, indent=1))
    assert sum(totals[c] for c in harness.CLASSES if c not in harness.GOOD) == 0, table
    assert len(listed) == len(CASES) >= 700


# Payloads that create the marker under a plain pickle.loads (the others are names a hostile file could use that a
# plain unpickler happens not to run: NEWOBJ skips __init__, EXT1 needs a registry entry, ...). The suite relies on
# these being real: a dud payload would make "refused before anything ran" meaningless.
REAL_PAYLOADS = sorted(set(pickles.hostile_pickles("/m")) - {"newobj-subprocess.Popen", "ext1-code-1", "concatenated",
                                                             "torch.load-recursive", "numpy-frombuffer-trick"})


def test_hostile_payloads_really_run_code_under_plain_pickle(tmp_path):
    marker = tmp_path / "MARK"
    for name in REAL_PAYLOADS:
        payload = tmp_path / "payload.pkl"
        payload.write_bytes(pickles.hostile_pickles(str(marker))[name])
        subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(payload)!r}, 'rb').read())"],
                       cwd=tmp_path, capture_output=True, timeout=60)
        assert marker.exists(), f"payload {name!r} did not run its code under plain pickle.loads"
        marker.unlink()


def test_every_case_id_is_unique_and_grouped():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    groups = {c.group for c in CASES}
    assert groups == {"arrays", "cli", "config", "memory", "paths", "preprocess", "video", "weights"}, groups
