"""Load at scale: Locust-driven agent arrivals, and scaling sweeps.

Locust patches the interpreter with gevent when it is imported, so it never runs
inside the harness's asyncio process: the harness keeps the backend session (services,
components, nemesis, the backend's client) and a run gateway, and Locust's own
processes (one local runner, or a master and its workers) generate the arrivals
through that gateway. Only `locustfile` imports Locust; every other module here is
safe to import anywhere.
"""
