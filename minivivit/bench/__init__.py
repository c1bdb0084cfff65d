"""Benchmarks: harness.py (minivivit bench's measurements), worker.py (one backend per process),
hf_reference.py (random-weight HF models, also used by the parity tests). See benchmarks/README.md."""
