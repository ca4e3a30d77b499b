"""The case store: FastAPI app, SQLAlchemy models, workflow, dispatch, statistics, Open311, operator UI.

Built in the case-store issue; the package exists now so the distribution's layout is fixed.
"""
