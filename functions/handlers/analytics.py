"""The analytics function: alert rules, subscriptions, derived datasets and lineage. A function of
its own because checking a derived dataset's query needs DuckDB, kept off the main API's cold start."""

from __future__ import annotations

from functions.handlers.http import build_resolver, make_handler
from functions.handlers.routes import analytics

ROUTERS = (analytics.router,)
app = build_resolver(*ROUTERS)
handler = make_handler(app)
