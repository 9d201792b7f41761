-- depends: 0001.initial-schema
-- The criticality levels, in order, as one table that ingestion_files refers to: the same
-- levels, in the same order, as `Criticality` in pipelines/ingestion/result.py (a test compares
-- them). A lookup table rather than a PostgreSQL enum: the column stays `text` for every client
-- (Grafana's PostgreSQL datasource failed on enum type OIDs until 2025, grafana#109862), and
-- `rank` orders levels in SQL: `JOIN criticality_levels l ON l.level = f.criticality
-- WHERE l.rank >= 2` is "medium or worse".
CREATE TABLE criticality_levels (
    level  text PRIMARY KEY,
    rank   smallint NOT NULL UNIQUE CHECK (rank >= 0)
);
INSERT INTO criticality_levels (level, rank) VALUES
    ('none', 0), ('low', 1), ('medium', 2), ('high', 3);

ALTER TABLE ingestion_files
    DROP CONSTRAINT ingestion_files_criticality_check,
    ADD CONSTRAINT ingestion_files_criticality_level
        FOREIGN KEY (criticality) REFERENCES criticality_levels (level);

-- One offending value per issue (cut to 100 characters by the validation), so that a
-- dashboard or a query shows what was wrong without opening bad_data.
ALTER TABLE data_quality_issues ADD COLUMN example text NOT NULL DEFAULT '';
