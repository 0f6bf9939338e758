"""HTTP: the MAPI routes, identity endpoints, health and metrics (FastAPI)."""
