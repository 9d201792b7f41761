-- depends: 0002.criticality-levels
-- What the Teams channel has been told, so that it hears about each distinct problem once
-- (then a digest, a reminder per cooldown, a "resolved" card), across restarts and overlapping
-- runs. Written by the pipelines (pipelines/ingestion/alert_state.py) under a transaction-level
-- advisory lock, so that two runs never decide on the same occurrences twice.

-- One row per distinct problem: its identity is `problem_key`, e.g.
-- 'data_quality:missing_value:age', 'drift:duration', 'pipeline:ingest_data.validate_data',
-- 'pipeline:quarantined', 'pipeline:refused:symlink'.
CREATE TABLE alert_problems (
    problem_key  text PRIMARY KEY CHECK (length(problem_key) BETWEEN 1 AND 500),
    kind         text NOT NULL CHECK (kind IN ('data_quality', 'drift', 'pipeline')),
    -- What a person reads: 'missing_value in age', 'drift of duration'.
    title        text NOT NULL,
    state        text NOT NULL CHECK (state IN ('open', 'resolved')),
    -- Start of the current episode (first occurrence since the problem was last resolved).
    opened_at    timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    -- When a look that could have seen it (a judged file, a judged drift window) first did
    -- not; NULL while it is seen. Resolved once absent for ALERT_RESOLVE_AFTER_S.
    absent_since timestamptz,
    -- The last card that told of it (problem or digest card): its cooldown starts there.
    last_card_at timestamptz,
    resolved_at  timestamptz
);

-- The cards posted (or logged, without a webhook): the storm budget counts them.
CREATE TABLE alert_cards (
    id           bigserial PRIMARY KEY,
    posted_at    timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('problem', 'digest', 'resolved')),
    problem_keys text[] NOT NULL,
    occurrences  integer NOT NULL CHECK (occurrences >= 0),
    -- false: no TEAMS_WEBHOOK_URL, the card went to the task log.
    delivered    boolean NOT NULL
);
CREATE INDEX alert_cards_posted ON alert_cards (posted_at);

-- Each time a problem was seen: in a file (source = its claimed name), in a drift window
-- (source = the file judged with it), in a failed task (source = dag/run/task).
-- card_id NULL: not told yet (waiting for its cooldown or the next digest).
CREATE TABLE alert_occurrences (
    id            bigserial PRIMARY KEY,
    problem_key   text NOT NULL REFERENCES alert_problems ON DELETE CASCADE,
    seen_at       timestamptz NOT NULL,
    source        text NOT NULL,
    criticality   text REFERENCES criticality_levels (level),
    rows_total    integer,
    rows_affected integer,
    detail        text NOT NULL DEFAULT '',
    -- The report's file name (the link is signed when a card is built), or another link
    -- (the task log) for pipeline failures.
    report_name   text,
    link          text,
    card_id       bigint REFERENCES alert_cards ON DELETE CASCADE,
    -- A retried task records the same occurrence once.
    UNIQUE (problem_key, source)
);
CREATE INDEX alert_occurrences_untold ON alert_occurrences (seen_at) WHERE card_id IS NULL;
