"""ViViT-B on the CPU: minivivit numpy and numba backends vs HF transformers (torch, sdpa and eager).

Same as `minivivit bench` (the code lives in minivivit/bench/ so that the installed command
has it); run from the repository root:

    python benchmarks/bench_cpu.py                  # the full table, a few minutes on 2 cores
    python benchmarks/bench_cpu.py --json > out.json
    python benchmarks/bench_cpu.py --layers 2 --frames 8 --image-size 112 --repeats 1   # smoke run

Results measured on the project machine are in benchmarks/README.md.
"""

import sys

from minivivit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
