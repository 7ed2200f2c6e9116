"""Alembic: the migrations build exactly the models' schema, and can be reverted."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from backend import migrate
from backend.db import Base


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()


def test_upgrade_and_downgrade_on_a_fresh_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        assert {"patient", "audit_entry", "auth_token", "record"} <= set(inspect(engine).get_table_names())
        migrate.downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
