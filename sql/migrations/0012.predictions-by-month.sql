-- `predictions` partitioned by month of `created_at` (PostgreSQL declarative partitioning),
-- so that old months are dropped whole (DETACH ... CONCURRENTLY, then DROP: mlsys/history.py,
-- `make prune-predictions`, PREDICTIONS_RETENTION_MONTHS) instead of a DELETE of millions of
-- rows, and so that every time-filtered query (/past-predictions, Grafana) reads only the
-- months it asks for (partition pruning: docs/scaling.md, "Prediction history").
--
-- The existing table is converted in place: every row keeps its id, the id sequence goes on,
-- the CHECK constraints, foreign keys, defaults, comments, grants and any index another
-- migration added before this one are carried over generically (the new table is built `LIKE` the old one, not
-- from a column list, so columns added before this migration come along).
--
-- Exactly once. Until now `UNIQUE (source_file, source_row)` made a scheduled row impossible
-- to store twice, whoever the writer. A unique constraint of a partitioned table must contain
-- the partition key, and `(source_file, source_row, created_at)` would let a row re-sent a
-- month later land in another partition: no guarantee left. Two ways out were weighed:
-- - a partition key fixed per source file (the month the file was first predicted): it needs
--   a lookup before every insert that only our own writer would do, a second time column that
--   every time-filtered query must also filter on to get pruning, and a file whose rows arrive
--   over a month boundary would still need the lookup to be right;
-- - a non-partitioned table of keys only, `prediction_keys (source_file, source_row)` as its
--   primary key, filled by a trigger of `predictions` at the end of the row's statement. Any
--   writer that inserts the same file and row twice, in any month, gets the same
--   unique_violation as before, and the whole statement (a whole COPY) is rolled back.
-- We chose the key table: the guarantee stays in the database for every writer, and nothing
-- changes in the service (its per-file advisory lock and lookup stay the fast path; the key
-- is the backstop, as the unique constraint was). It costs one small index entry per
-- scheduled row and one statement per insert statement. Retention deletes the keys of a
-- month before it detaches the month, so a re-sent row of a kept month is still found.
--
-- Partitions are created ahead (mlsys/history.py: by `make up`/`make migrate` and by
-- `make prune-predictions`), never by the request path. An insert never fails for want of a
-- month: below the oldest month and above the newest one, two catch-all partitions
-- (`predictions_before`, FROM MINVALUE; `predictions_after`, TO MAXVALUE) take any row.
-- They are range partitions, not a DEFAULT partition, on purpose: PostgreSQL refuses
-- `DETACH PARTITION ... CONCURRENTLY` while a DEFAULT partition exists ("cannot detach
-- partitions concurrently when a default partition exists", checked on PostgreSQL 18), and
-- without CONCURRENTLY a detach takes ACCESS EXCLUSIVE on `predictions`, which queues every
-- writer behind the longest running query. The maintenance moves a catch-all's bound by
-- detaching it CONCURRENTLY, attaching the new months (rows of theirs that waited in the
-- catch-all move into them) and attaching it back (predictions_attach_months). For those
-- seconds, a row dated beyond the newest month (or before the oldest) would be refused; the
-- service stamps rows with now(), which is always inside a month.

-- The keys of scheduled predictions: one (file, row) is stored once, in whatever month.
CREATE TABLE prediction_keys (
    source_file   text NOT NULL,
    source_row    integer NOT NULL,
    prediction_id bigint NOT NULL,
    -- The prediction's created_at: retention deletes the keys of the months it drops.
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (source_file, source_row)
);
CREATE INDEX prediction_keys_time ON prediction_keys (created_at);

-- Statement-level, from the statement's transition table: one set-based insert per INSERT
-- or COPY rather than one trigger call per row.
CREATE FUNCTION prediction_keys_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO prediction_keys (source_file, source_row, prediction_id, created_at)
    SELECT source_file, source_row, id, created_at FROM inserted WHERE source_file IS NOT NULL;
    RETURN NULL;
END;
$$;

CREATE FUNCTION prediction_keys_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM prediction_keys k USING deleted d
    WHERE d.source_file IS NOT NULL AND k.source_file = d.source_file
      AND k.source_row = d.source_row AND k.prediction_id = d.id;
    RETURN NULL;
END;
$$;

-- A stored prediction's file, row and time are its identity: changing them would leave its
-- key pointing elsewhere. Nothing updates predictions (the service may not); refuse loudly.
CREATE FUNCTION prediction_keys_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'source_file, source_row and created_at of a stored prediction do not change'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

-- The partitions of predictions as the catalog knows them, oldest first: the range
-- [range_from, range_to) of each (NULL for MINVALUE / MAXVALUE: the two catch-alls), and
-- whether a DETACH ... CONCURRENTLY of it was interrupted (then it must be finalised).
CREATE FUNCTION predictions_partitions()
RETURNS TABLE (partition regclass, range_from timestamptz, range_to timestamptz,
               catch_all boolean, detach_pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz,
           pg_get_expr(c.relpartbound, c.oid) ~ '(MINVALUE|MAXVALUE)',
           i.inhdetachpending
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'predictions'::regclass
    ORDER BY 2 NULLS FIRST, 3 NULLS LAST
$$;

-- The transactional half of moving a catch-all's bound (mlsys/history.py detaches it
-- CONCURRENTLY first, which no function can do): each month of `months` (first instants,
-- UTC) becomes a partition, taking its rows out of the detached catch-all `catch_all`, then
-- `catch_all` is attached again FROM `lower` TO `upper` (NULL: MINVALUE / MAXVALUE). Returns
-- the months created. ATTACH takes SHARE UPDATE EXCLUSIVE on predictions: inserts and reads
-- go on. The rows keep their ids and keys (a detached table has no triggers).
CREATE FUNCTION predictions_attach_months(catch_all text, months timestamp[],
                                          lower timestamptz, upper timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    month timestamp;
    lo timestamptz;
    hi timestamptz;
    name text;
BEGIN
    FOREACH month IN ARRAY months LOOP
        lo := month AT TIME ZONE 'UTC';
        hi := (month + interval '1 month') AT TIME ZONE 'UTC';
        name := 'predictions_' || to_char(month, 'YYYY_MM');
        EXECUTE format('CREATE TABLE %I (LIKE predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
        EXECUTE format(
            'WITH moved AS (DELETE FROM %I WHERE created_at >= %L AND created_at < %L RETURNING *)
             INSERT INTO %I SELECT * FROM moved', catch_all, lo, hi, name);
        EXECUTE format('ALTER TABLE predictions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
        RETURN NEXT name;
    END LOOP;
    EXECUTE format('ALTER TABLE predictions ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   catch_all,
                   COALESCE(quote_literal(lower), 'MINVALUE'), COALESCE(quote_literal(upper), 'MAXVALUE'));
END;
$$;

-- The conversion. Nothing else writes while yoyo's transaction holds this lock.
LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE;
ALTER TABLE predictions RENAME TO predictions_unpartitioned;

DO $$
DECLARE
    r record;
    def text;
    extra_indexes text[] := '{}';
    ours constant text[] := ARRAY['predictions_source_time', 'predictions_time'];
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE confrelid = 'predictions_unpartitioned'::regclass AND contype = 'f') THEN
        RAISE EXCEPTION 'a foreign key refers to predictions: it needs a unique key that a '
                        'partitioned table cannot give; change that migration first';
    END IF;
    -- Indexes another migration added before this one (not ours, not behind a constraint):
    -- carried over under their names. The old ones are renamed out of the way.
    FOR r IN SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def, i.indisunique
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = 'predictions_unpartitioned'::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
    LOOP
        IF NOT r.relname = ANY(ours) THEN
            extra_indexes := extra_indexes || replace(r.def, ' ON public.predictions_unpartitioned ',
                                                      ' ON public.predictions ');
        END IF;
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.relname, left(r.relname, 40) || '_unpartitioned');
    END LOOP;
    FOR r IN SELECT k.conname FROM pg_constraint k
             WHERE k.conrelid = 'predictions_unpartitioned'::regclass AND k.contype IN ('p', 'u', 'x')
    LOOP
        EXECUTE format('ALTER TABLE predictions_unpartitioned RENAME CONSTRAINT %I TO %I',
                       r.conname, left(r.conname, 40) || '_unpartitioned');
    END LOOP;

    -- Columns, defaults (the id keeps drawing from predictions_id_seq), NOT NULL and CHECK
    -- constraints by their names, comments, storage, statistics: everything but the indexes,
    -- whose unique ones cannot exist without the partition key.
    CREATE TABLE predictions (LIKE predictions_unpartitioned INCLUDING ALL EXCLUDING INDEXES)
        PARTITION BY RANGE (created_at);
    -- Ids come from one sequence, so (id, created_at) is as unique as id was; it is the
    -- primary key a partitioned table can have. The lookup by id (an Idempotency-Key's
    -- predictions) uses it as an index on id.
    ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id, created_at);
    FOR r IN SELECT k.conname, pg_get_constraintdef(k.oid) AS def FROM pg_constraint k
             WHERE k.conrelid = 'predictions_unpartitioned'::regclass AND k.contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE predictions ADD CONSTRAINT %I %s', r.conname, r.def);
    END LOOP;
    FOREACH def IN ARRAY extra_indexes LOOP
        EXECUTE def;  -- a unique one without created_at fails here, loudly
    END LOOP;
    -- The same grants as the old table had (sql/grants.sql re-applies them anyway on an
    -- embedded server; a server whose grants are "yours" keeps them this way).
    FOR r IN SELECT a.privilege_type, a.is_grantable,
                    CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS who
             FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = 'predictions_unpartitioned'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON predictions TO %s%s', r.privilege_type, r.who,
                       CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    ALTER SEQUENCE predictions_id_seq OWNED BY predictions.id;
END;
$$;

-- /past-predictions: a time window, optionally one source, newest first, keyset pagination;
-- the dashboards' and alert rules' time windows. Created on the parent, so every partition
-- (and every one attached later) gets them.
CREATE INDEX predictions_source_time ON predictions (source, created_at DESC, id DESC);
CREATE INDEX predictions_time ON predictions (created_at DESC, id DESC);
-- The service's lookup of a file's rows already stored (service/store.py, stored_rows).
CREATE INDEX predictions_file_row ON predictions (source_file, source_row)
    WHERE source_file IS NOT NULL;

-- Every month since the oldest stored prediction and three ahead, between the catch-alls.
DO $$
DECLARE
    first_month timestamp := date_trunc('month', COALESCE(
        (SELECT min(created_at) FROM predictions_unpartitioned), now()) AT TIME ZONE 'UTC');
    last_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months';
    month timestamp := first_month;
BEGIN
    EXECUTE format('CREATE TABLE predictions_before PARTITION OF predictions
                    FOR VALUES FROM (MINVALUE) TO (%L)', first_month AT TIME ZONE 'UTC');
    WHILE month <= last_month LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF predictions FOR VALUES FROM (%L) TO (%L)',
                       'predictions_' || to_char(month, 'YYYY_MM'), month AT TIME ZONE 'UTC',
                       (month + interval '1 month') AT TIME ZONE 'UTC');
        month := month + interval '1 month';
    END LOOP;
    EXECUTE format('CREATE TABLE predictions_after PARTITION OF predictions
                    FOR VALUES FROM (%L) TO (MAXVALUE)', month AT TIME ZONE 'UTC');
END;
$$;

INSERT INTO predictions SELECT * FROM predictions_unpartitioned;
INSERT INTO prediction_keys (source_file, source_row, prediction_id, created_at)
    SELECT source_file, source_row, id, created_at FROM predictions_unpartitioned
    WHERE source_file IS NOT NULL;
DROP TABLE predictions_unpartitioned;

-- From now on the key comes with the row, in the same statement (a COPY included).
CREATE TRIGGER prediction_keys_insert AFTER INSERT ON predictions
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION prediction_keys_insert();
CREATE TRIGGER prediction_keys_delete AFTER DELETE ON predictions
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION prediction_keys_delete();
CREATE TRIGGER prediction_keys_frozen BEFORE UPDATE OF source_file, source_row, created_at
    ON predictions FOR EACH ROW
    WHEN (NEW.source_file IS DISTINCT FROM OLD.source_file
          OR NEW.source_row IS DISTINCT FROM OLD.source_row
          OR (OLD.source_file IS NOT NULL AND NEW.created_at IS DISTINCT FROM OLD.created_at))
    EXECUTE FUNCTION prediction_keys_frozen();
