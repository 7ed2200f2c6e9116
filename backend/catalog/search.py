"""Full-text search of the catalogue, accent- and case-insensitive in French, one function per dialect.

- PostgreSQL: ``catalog_service.search_vector`` holds ``to_tsvector('french', unaccent(search_document))``
  under a GIN index; a search is ``search_vector @@ to_tsquery('french', unaccent('w1:* & w2:*'))``: French
  stemming, and every word a prefix ("vaccin" finds "Vaccination"). ``carnet_unaccent`` is the migration's
  IMMUTABLE wrapper around the ``unaccent`` extension (schema-qualified, so it works whatever the
  search_path, and may be used in an index).
- SQLite: an FTS5 index (``unicode61 remove_diacritics 2`` tokenizer, prefix queries ``"w1"* "w2"*``). It is
  a table of the connection's ``temp`` schema rebuilt from ``catalog_service`` whenever the catalogue's
  revision changed: the catalogue is small (hundreds of rows at most), and a virtual table in the main
  schema would bring five shadow tables that are no model's. The rebuild and its revision mark are in the
  caller's transaction, so a rollback leaves them consistent.

Words are reduced to letters and digits first (``vocabulary.search_words``): user input never becomes
query syntax. A fixed number of statements whatever the catalogue's size.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select, text, update
from sqlalchemy.orm import Session

from backend.catalog.models import CatalogService
from backend.catalog.vocabulary import search_words

FTS_TABLE = "catalog_fts"


def matching(session: Session, query: str) -> ColumnElement[bool] | None:
    """A condition on ``CatalogService`` selecting the services that match ``query``; None when the query
    has no word (no filter)."""
    words = search_words(query)
    if not words:
        return None
    if session.get_bind().dialect.name == "postgresql":
        tsquery = func.to_tsquery(literal_column("'french'"), func.carnet_unaccent(" & ".join(f"{w}:*" for w in words)))
        return CatalogService.search_vector.op("@@")(tsquery)
    _refresh_sqlite_index(session)
    match = " ".join(f'"{w}"*' for w in words)
    ids = select(literal_column("rowid")).select_from(text(f"temp.{FTS_TABLE}")).where(
        text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=match))
    return CatalogService.id.in_(ids)


def refresh_vectors(session: Session, ids: list[int]) -> None:
    """After services changed: their tsvector on PostgreSQL (one statement); nothing on SQLite, whose
    index follows the catalogue's revision."""
    if not ids or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(update(CatalogService).where(CatalogService.id.in_(ids)).values(
        search_vector=func.to_tsvector(literal_column("'french'"),
                                       func.carnet_unaccent(CatalogService.search_document)))
        .execution_options(synchronize_session=False))


def _refresh_sqlite_index(session: Session) -> None:
    conn = session.connection()
    conn.exec_driver_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{FTS_TABLE} USING fts5("
                         "document, tokenize = 'unicode61 remove_diacritics 2')")
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS temp.{FTS_TABLE}_state (revision TEXT NOT NULL)")
    current, indexed = conn.exec_driver_sql(
        "SELECT (SELECT count(*) || ':' || coalesce(sum(revision), 0) || ':' || coalesce(max(id), 0) "
        "FROM catalog_service), "
        f"(SELECT revision FROM temp.{FTS_TABLE}_state)").one()
    if current == indexed:
        return
    conn.exec_driver_sql(f"DELETE FROM temp.{FTS_TABLE}")
    conn.exec_driver_sql(f"INSERT INTO temp.{FTS_TABLE} (rowid, document) SELECT id, search_document "
                         "FROM catalog_service")
    conn.exec_driver_sql(f"DELETE FROM temp.{FTS_TABLE}_state")
    params: Any = (current,)
    conn.exec_driver_sql(f"INSERT INTO temp.{FTS_TABLE}_state (revision) VALUES (?)", params)
