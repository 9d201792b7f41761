"""The model service: FastAPI on uvicorn (see docs/service.md and docs/api.md)."""
