"""The API function: catalog, directory, audit, ingestion, sharing and city-picture routes behind the request
authorizer (see functions/handlers/http.py for what every HTTP function shares)."""

from __future__ import annotations

from functions.handlers.http import build_resolver, make_handler
from functions.handlers.routes import audit, catalog, city, directory, ingest, sharing

ROUTERS = (catalog.router, directory.router, audit.router, ingest.router, sharing.router, city.router)
app = build_resolver(*ROUTERS)
handler = make_handler(app)
