-- Claims of raw files by ingestion runs: who holds a file, its content hash, the errors its
-- run met, and how the claim ended. Failed claims of the same content are its failed
-- attempts: at INGEST_MAX_ATTEMPTS the file goes to bad_data whole instead of looping.
CREATE TABLE ingestion_claims (
    id             bigserial PRIMARY KEY,
    -- The file's name in DATA_DIR/processing/ (and then good_data/, bad_data/, archive/).
    claimed_name   text NOT NULL UNIQUE,
    -- The name it arrived under in raw-data, exactly (any characters).
    original_name  text NOT NULL,
    -- Set right after the rename; NULL only if the run died in between.
    sha256         text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- Who holds the claim: an Airflow run (dag_id, run_id, try_number) and the process
    -- (host, boot_id, pid, pid_start) that claimed it. Released only when it is dead.
    holder         jsonb NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    -- Errors of the tasks that failed on this file: [{"task", "try", "error"}], oldest first.
    errors         jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- NULL while held; 'done' once the split removed the file and the run ended; 'failed'
    -- when its run ended leaving the file claimed (the file went back to raw-data);
    -- 'quarantined' when it went to bad_data whole.
    outcome        text CHECK (outcome IN ('done', 'failed', 'quarantined')),
    -- Why it ended: the evidence that its holder was dead.
    evidence       text,
    ended_at       timestamptz
);
CREATE INDEX ingestion_claims_sha256 ON ingestion_claims (sha256, id);
CREATE INDEX ingestion_claims_open ON ingestion_claims (id) WHERE outcome IS NULL;

-- The name a file arrived under, beside the safe name used everywhere else. Filled from the
-- claim when the row is written, so that every writer of ingestion_files gets it for free.
ALTER TABLE ingestion_files ADD COLUMN original_name text;

CREATE FUNCTION ingestion_files_original_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.original_name IS NULL THEN
        NEW.original_name := (SELECT original_name FROM ingestion_claims
                              WHERE claimed_name = NEW.file_name);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ingestion_files_original_name
    BEFORE INSERT OR UPDATE ON ingestion_files
    FOR EACH ROW EXECUTE FUNCTION ingestion_files_original_name();
