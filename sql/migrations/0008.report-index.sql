-- depends: 0003.ingestion-claims
-- The index of reports (GET /reports/, service/report_index.py) finds files by a substring of
-- their name, the name they arrived under or the claimed one. Without this index a substring
-- that matches few files reads the whole table: 160 ms per query over 100,000 files
-- (bench/report_index_bench.py). A trigram index answers `ILIKE '%part%'` by lookup.
-- pg_trgm is a contrib extension marked trusted (PostgreSQL 13+): the tables' owner may create
-- it; it ships with the embedded server and the official postgres image.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- One expression for both names, the same as in the page's query. The newline cannot occur in
-- a file name nor in a filter (the page refuses control characters), so no match spans it.
CREATE INDEX ingestion_files_names_trgm ON ingestion_files
    USING gin ((COALESCE(original_name, '') || E'\n' || file_name) gin_trgm_ops);
