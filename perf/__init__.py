"""muxtrio's performance suite (issue 8): a fast fake provider, wrk and Python load drivers, scenarios side by side
with LiteLLM and the direct provider, an in-process codec benchmark and a py-spy profiler. Not run in CI.

Entry point: ``python -m perf run [--quick] [--only SCENARIO]``; see ``perf/README.md``.
"""
