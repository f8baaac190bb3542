"""Persistence: typed SQLAlchemy tables, one repository per aggregate, Alembic migrations, blobs."""
