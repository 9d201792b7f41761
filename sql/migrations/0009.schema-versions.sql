-- depends: 0008.report-index
-- Which schema judged what (issue 16): every version of schema/schema.pbtxt that judged a file
-- or was approved, keyed by the SHA-256 of the file's bytes; `version` is the human number of
-- its `# schema-version: N` header line ('0' for a file without one). mlsys/schema_versions.py
-- writes it (`record_schema_version`): the ingestion when it stores a file's statistics, an
-- approval when it writes a new schema. Two hashes may share a number (a hand edit that did
-- not bump it): the hash is the identity, the number what people say.
CREATE TABLE schema_versions (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    version      text NOT NULL CHECK (version ~ '^[0-9]{1,9}$'),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    -- The schema's text, when the recorder had it (NULL: the file had changed meanwhile).
    schema_text  text,
    -- Who approved it and why, when an approval wrote it (NULL for a hand edit).
    approved_by  text,
    reason       text,
    -- The proposal it came from (the proposals' table, migration 0010, may add the key).
    proposal_id  bigint
);
CREATE INDEX schema_versions_version ON schema_versions (version);

-- The version each file was judged by. Rows from before this migration stay NULL: which
-- schema judged them was never recorded, and backfilling today's version would be a guess.
ALTER TABLE ingestion_files
    ADD COLUMN schema_version text,
    ADD COLUMN schema_sha256 text REFERENCES schema_versions (sha256),
    ADD CONSTRAINT ingestion_files_schema_together
        CHECK ((schema_version IS NULL) = (schema_sha256 IS NULL));

-- The version an alert's occurrence was judged by (data-quality and drift occurrences; NULL
-- for pipeline failures and for occurrences recorded before this migration).
ALTER TABLE alert_occurrences
    ADD COLUMN schema_version text,
    ADD COLUMN schema_sha256 text,
    ADD CONSTRAINT alert_occurrences_schema_together
        CHECK ((schema_version IS NULL) = (schema_sha256 IS NULL));
