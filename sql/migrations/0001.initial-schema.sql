-- The application's tables. Applied by yoyo-migrations (`make migrate`), each file in one
-- transaction; never edit an applied migration, add a new file instead.

-- Every prediction the service made, with the features it was given.
CREATE TABLE predictions (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL CHECK (source IN ('webapp', 'scheduled')),
    features      jsonb NOT NULL,
    prediction    text NOT NULL,
    probability   double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    model_version text NOT NULL,
    -- Scheduled predictions name the good_data file and row they came from; the pair is
    -- unique, so that a retried DAG run cannot store a row twice.
    source_file   text,
    source_row    integer CHECK (source_row >= 0),
    CONSTRAINT predictions_file_row_together CHECK ((source_file IS NULL) = (source_row IS NULL)),
    CONSTRAINT predictions_scheduled_has_file CHECK ((source = 'scheduled') = (source_file IS NOT NULL)),
    CONSTRAINT predictions_file_row_unique UNIQUE (source_file, source_row)
);
-- past-predictions: a time window, optionally one source, newest first, keyset pagination.
CREATE INDEX predictions_source_time ON predictions (source, created_at DESC, id DESC);
CREATE INDEX predictions_time ON predictions (created_at DESC, id DESC);

-- One row per ingested raw file.
CREATE TABLE ingestion_files (
    id            bigserial PRIMARY KEY,
    file_name     text NOT NULL UNIQUE,
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    rows_total    integer NOT NULL CHECK (rows_total >= 0),
    rows_valid    integer NOT NULL CHECK (rows_valid >= 0),
    rows_invalid  integer NOT NULL CHECK (rows_invalid >= 0),
    criticality   text NOT NULL CHECK (criticality IN ('none', 'low', 'medium', 'high')),
    -- Set when the file could not be parsed at all.
    parse_error   text,
    report_path   text,
    CONSTRAINT ingestion_rows_add_up CHECK (rows_valid + rows_invalid = rows_total)
);
CREATE INDEX ingestion_files_time ON ingestion_files (ingested_at);

-- Data-quality issues found in a file, one row per error type and column.
CREATE TABLE data_quality_issues (
    file_id      bigint NOT NULL REFERENCES ingestion_files (id) ON DELETE CASCADE,
    error_type   text NOT NULL,
    -- '' for issues that concern the whole file rather than one column.
    column_name  text NOT NULL DEFAULT '',
    level        text NOT NULL CHECK (level IN ('row', 'file')),
    row_count    integer NOT NULL CHECK (row_count >= 0),
    description  text NOT NULL DEFAULT '',
    PRIMARY KEY (file_id, error_type, column_name)
);
CREATE INDEX data_quality_issues_type ON data_quality_issues (error_type);

-- Drift of each feature against the training statistics, judged on a window of recent rows.
CREATE TABLE feature_drift (
    file_id      bigint NOT NULL REFERENCES ingestion_files (id) ON DELETE CASCADE,
    feature      text NOT NULL,
    metric       text NOT NULL CHECK (metric IN ('jensen_shannon', 'l_infinity')),
    value        double precision,
    threshold    double precision NOT NULL,
    status       text NOT NULL CHECK (status IN ('ok', 'drift', 'insufficient_data')),
    window_rows  integer NOT NULL CHECK (window_rows >= 0),
    PRIMARY KEY (file_id, feature)
);

-- Ledger of good_data files the prediction DAG has handled.
CREATE TABLE predicted_files (
    file_name     text PRIMARY KEY,
    status        text NOT NULL CHECK (status IN ('done', 'failed')),
    rows          integer NOT NULL CHECK (rows >= 0),
    reason        text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX predicted_files_time ON predicted_files (recorded_at);
