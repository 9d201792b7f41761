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

-- The signed links of each file, made by the ingestion when it stores the file's statistics
-- (mlsys/report_links.py, valid for a week from ingestion): Grafana's table of
-- files links to them. Grafana cannot sign a link (it must never hold REPORT_LINK_KEY), so the
-- one component that signs stores them beside the row. Whoever reads this table (Grafana's
-- reader role) can follow them: what they open (the report, the index) shows the same counts,
-- issues and example values as the tables themselves. They expire a week after the row was
-- written. NULL: no REPORT_LINK_KEY configured, or a row from before this migration.
ALTER TABLE ingestion_files
    ADD COLUMN report_link text,
    ADD COLUMN index_link text;
