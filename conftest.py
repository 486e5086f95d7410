"""Repository-wide pytest set-up, also for suites run directly (``pytest packages/<pkg>/tests``), not only via make.

The 2-process tests fork (accelerate's ``debug_launcher``): a child forked after the parent ran an OpenMP parallel
region with several threads waits forever on libgomp's pool, so tests run with one OpenMP thread unless the caller
chose otherwise (``make test-all`` exports the same value).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
