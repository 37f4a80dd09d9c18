"""The demo agent service (`vigil demo`): an aiohttp service instrumented with
`vigil_instrument`, backed by the default business schema (SQLite or PostgreSQL) and
optionally Redis, with a built-in traffic generator. See docs/instrumentation.md#demo-service.

    app.py          make_app(settings): routes, middlewares, cleanup_ctx (engine, Redis, workers)
    routes.py       the HTTP API            middlewares.py  auth, API calls, errors as JSON
    auth.py         logins, tokens, API keys  quotas.py     plan limits (429)
    agents.py       agents and tools        llm.py          the fake LLM provider
    chat.py         channel messages        inbox.py        the queue and its worker
    cache.py        read-through cache      storage.py      SQLAlchemy Core on vigil_exporter.dbschema
    series.py       pre-initialised series  traffic.py      the traffic generator
    settings.py     Settings                cli.py          `vigil demo`
"""

__version__ = "0.1.0"  # released together with vigil-exporter: the same version
