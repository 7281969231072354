"""`python -m worker`: the ingest worker (see worker/runner.py)."""

from worker.runner import main

main()
