"""Benchmark-only knobs for the processes ``benchmarks/run.py`` starts (provider hosts, sandboxes).

``benchmarks/run.py`` puts this folder on ``PYTHONPATH`` of the processes it starts, so Python imports this
module at start-up. It changes nothing unless one of these variables is set:

- ``BENCH_READ_SNAPSHOT_SECONDS``: ``oppie_pulumi.phone_agent.READ_SNAPSHOT_SECONDS`` in a provider host, so
  that per-operation read latency through the host can be measured with a fresh ``GET /phone`` each time.
- ``BENCH_RATE_WINDOW_SECONDS``: the window of both rate limiters (the provider's and the sandbox's), so that
  ``--smoke`` can run the rate-limited create test time-scaled (same requests per window, shorter window).
"""

import os

_snapshot = os.environ.get("BENCH_READ_SNAPSHOT_SECONDS")
_window = os.environ.get("BENCH_RATE_WINDOW_SECONDS")

if _snapshot:
    import oppie_pulumi.phone_agent

    oppie_pulumi.phone_agent.READ_SNAPSHOT_SECONDS = float(_snapshot)

if _window:
    import oppie_pulumi._client

    oppie_pulumi._client.RateLimiter.WINDOW_SECONDS = float(_window)
    try:
        import oppie_pulumi.sandbox._faults
    except ImportError:  # the sandbox extra is not installed: only the provider's limiter matters
        pass
    else:
        oppie_pulumi.sandbox._faults.RateLimiter.WINDOW_S = float(_window)
