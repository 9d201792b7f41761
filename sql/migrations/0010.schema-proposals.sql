-- depends: 0009.schema-versions
-- The curator's loop (issue 16, docs/schema.md): evidence that the data changed legitimately,
-- and the schema changes proposed from it, approved or rejected by a person.

-- What each judged file says about the schema, beyond the counts of data_quality_issues
-- (which keep one example value per rule and column): every value outside a string domain
-- with its rows, the furthest value beyond each side of a numeric range with its rows, and
-- each column the schema does not know, summarised. Written by the ingestion with the file's
-- statistics (pipelines/ingestion/store.py), replaced on a retry; bounded per file
-- (pipelines/proposals/evidence.py: MAX_VALUES values per column), whatever its size.
CREATE TABLE schema_evidence (
    file_id      bigint NOT NULL REFERENCES ingestion_files (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('category', 'above_max', 'below_min', 'column')),
    column_name  text NOT NULL CHECK (length(column_name) BETWEEN 1 AND 1000),
    -- The value outside the domain ('category'); '' for the other kinds.
    value        text NOT NULL DEFAULT '',
    -- Rows of the file with that value / beyond that bound / with the column filled in.
    row_count    integer NOT NULL CHECK (row_count >= 0),
    -- above_max / below_min: the furthest value beyond the bound.
    extreme      double precision,
    -- column: {"numeric", "integer", "min", "max", "missing", "distinct", "values": [[v, rows]]}.
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (file_id, kind, column_name, value)
);
CREATE INDEX schema_evidence_change ON schema_evidence (kind, column_name, value);

-- One proposed change of schema.pbtxt: its diff, the evidence it rests on, and the decision.
CREATE TABLE schema_proposals (
    id                    bigserial PRIMARY KEY,
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- What changes, independent of the evidence: 'category:purpose:crypto',
    -- 'above_max:credit_amount', 'below_min:age', 'column:channel'. One open proposal per key.
    change_key            text NOT NULL CHECK (length(change_key) BETWEEN 1 AND 2000),
    -- The change as data (kind, feature, value or bound, the edit), and a sentence for people.
    change                jsonb NOT NULL,
    title                 text NOT NULL,
    status                text NOT NULL DEFAULT 'proposed'
                          CHECK (status IN ('proposed', 'approved', 'rejected')),
    -- Files, rows and shares the proposal rests on, and the thresholds it passed.
    evidence              jsonb NOT NULL,
    -- sha256 of the change key and the (file, rows) of its evidence: the same evidence is
    -- never proposed twice, whatever was decided about it.
    evidence_fingerprint  text NOT NULL UNIQUE CHECK (evidence_fingerprint ~ '^[0-9a-f]{64}$'),
    -- A unified diff of schema.pbtxt, and the whole text it leads to, against the schema
    -- file whose sha256 is base_sha256 (version base_version when known).
    diff                  text NOT NULL,
    new_text              text NOT NULL,
    base_sha256           text NOT NULL CHECK (base_sha256 ~ '^[0-9a-f]{64}$'),
    base_version          text,
    -- Who decided, when, why, and through what ('make', 'airflow'); the version approval wrote.
    decided_by            text,
    decided_at            timestamptz,
    decided_reason        text,
    decided_via           text,
    schema_version        text,
    CONSTRAINT schema_proposals_decided CHECK (
        (status = 'proposed') = (decided_at IS NULL)
        AND (status = 'proposed') = (decided_by IS NULL)
    )
);
CREATE UNIQUE INDEX schema_proposals_one_open ON schema_proposals (change_key)
    WHERE status = 'proposed';
CREATE INDEX schema_proposals_key_time ON schema_proposals (change_key, decided_at);
CREATE INDEX schema_proposals_time ON schema_proposals (created_at DESC);

-- The version an approval wrote names its proposal (0009 left the key to this migration).
ALTER TABLE schema_versions
    ADD CONSTRAINT schema_versions_proposal FOREIGN KEY (proposal_id) REFERENCES schema_proposals (id);
