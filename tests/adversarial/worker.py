"""One worker of the adversarial suite: `python worker.py ROOT` reads a JSON list of case ids on stdin, runs
them one after the other under a memory limit and prints `START id` / `RESULT {json}` lines (harness.py)."""

import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main() -> None:
    root = Path(sys.argv[1])
    ids = json.loads(sys.stdin.read())
    resource.setrlimit(resource.RLIMIT_AS, (harness.MEMORY_LIMIT, harness.MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    protocol = os.fdopen(os.dup(1), "w")  # the parent reads this; anything a case prints goes to stderr (discarded)
    os.dup2(2, 1)
    cases = {c.id: c for c in harness.all_cases()}
    for case_id in ids:
        print(f"START {case_id}", file=protocol, flush=True)
        result = harness.run_case(cases[case_id], root)
        print(f"RESULT {json.dumps(result)}", file=protocol, flush=True)


if __name__ == "__main__":
    main()
