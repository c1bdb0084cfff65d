"""Run the adversarial suite and print the totals per class (and, with -v, every case that is not CLEAR/OK).

    python tests/adversarial/run.py                 # all cases, 2 workers
    python tests/adversarial/run.py -k weights/     # the cases whose id contains a string
    python tests/adversarial/run.py --json out.json # every result
The package under test is whatever `import minivivit` finds (PYTHONPATH).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", action="append", default=[], help="only cases whose id contains this (repeatable)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="worker processes at a time (default: 2)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case that is not CLEAR or OK")
    p.add_argument("--all", action="store_true", help="with -v: print every case")
    p.add_argument("--json", help="write every result to this file")
    args = p.parse_args(argv)
    cases = [c for c in harness.all_cases() if not args.k or any(k in c.id for k in args.k)]
    where = subprocess.run([sys.executable, "-c", "import minivivit; print(minivivit.__file__)"], capture_output=True,
                           text=True, cwd="/").stdout.strip()
    print(f"{len(cases)} cases against {where}", flush=True)
    t0 = time.perf_counter()
    results = harness.run_cases(cases, jobs=args.jobs)
    seconds = time.perf_counter() - t0
    if args.verbose:
        for r in results:
            if args.all or r["cls"] not in harness.GOOD:
                print(f"{r['cls']:<8} {r['id']}  ({r['seconds']:.1f} s)\n         {r['detail']}")
    print(harness.format_totals(results))
    print(f"wall time {seconds:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": seconds, "totals": harness.totals(results),
                                               "results": results}, indent=1))
    return 0 if all(r["cls"] in harness.GOOD for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
