-- Requests of the UI sent with an Idempotency-Key (one chunk of an uploaded CSV file): sent
-- again after a timeout, such a request is answered with the predictions it stored the first
-- time, never stored twice (docs/api.md). Scheduled rows have the same guarantee by
-- (source_file, source_row) in `predictions`.
CREATE TABLE idempotent_requests (
    idempotency_key text PRIMARY KEY
        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of the request's normalised records: the same key with other records is refused.
    request_sha256  bytea NOT NULL CHECK (length(request_sha256) = 32),
    -- The predictions the request stored, in the order of its records.
    prediction_ids  bigint[] NOT NULL DEFAULT '{}'
);
CREATE INDEX idempotent_requests_time ON idempotent_requests (created_at);
