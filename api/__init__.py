"""The case store: FastAPI app, SQLAlchemy models, workflow, dispatch, statistics, Open311, operator UI."""
