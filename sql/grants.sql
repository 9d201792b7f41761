-- What each component's role may do in the application database. Applied by `make up` /
-- `make migrate` (mlsys.db.apply_grants) after the migrations, as the owner of the tables, on
-- every run: a table added by a new migration gets its grants here, in the same change.
-- {service}, {pipelines}, {reader} are role names, quoted as identifiers by the caller.
-- Everything not granted here is refused (the roles own nothing and are not superusers).

-- Start from nothing, so that a privilege removed from this file is removed from the server.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {service}, {pipelines}, {reader};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {service}, {pipelines}, {reader};
GRANT USAGE ON SCHEMA public TO {service}, {pipelines}, {reader};

-- The model service stores predictions (INSERT, COPY, ids from the sequence) and reads them
-- back (/past-predictions, resends of scheduled rows). It never updates or deletes one.
GRANT SELECT, INSERT ON predictions TO {service};
GRANT USAGE ON SEQUENCE predictions_id_seq TO {service};
-- The keys of scheduled rows (0012): written by the trigger of predictions, as the inserting
-- role, in the same statement as the row; never updated or deleted by the service.
GRANT SELECT, INSERT ON prediction_keys TO {service};
-- The UI's chunks carry an Idempotency-Key: a resend finds the first answer (0005). A key is
-- written once, then given the ids of its predictions in the same transaction.
GRANT SELECT, INSERT, UPDATE ON idempotent_requests TO {service};
-- The index of reports (GET /reports/, service/routes/report_index.py) lists the ingested files,
-- their issue types and the criticality levels: read, never written.
GRANT SELECT ON ingestion_files, data_quality_issues, criticality_levels TO {service};
-- The service records the metadata of the model it loads (0007): written once per version
-- (INSERT ... ON CONFLICT DO NOTHING), never changed.
GRANT SELECT, INSERT ON model_versions TO {service};
-- The schema versions (0009): the service reads which version judged what (index of reports).
GRANT SELECT ON schema_versions TO {service};
-- The UI's page of schema proposals reads them through the API (0010): read, never written.
GRANT SELECT ON schema_proposals TO {service};

-- The pipelines record ingested files, their issues and drift (upserts: the task may be
-- retried), and the prediction DAG's ledger. Predictions are stored through the API only.
-- DELETE: the row of a failed attempt whose file goes back to raw-data is removed (its
-- statistics described rows that never landed; pipelines/ingestion/lifecycle.py).
GRANT SELECT, INSERT, UPDATE, DELETE ON ingestion_files TO {pipelines};
GRANT USAGE ON SEQUENCE ingestion_files_id_seq TO {pipelines};
GRANT SELECT, INSERT, DELETE ON data_quality_issues, feature_drift TO {pipelines};
GRANT SELECT, INSERT, UPDATE ON predicted_files TO {pipelines};
-- The ingestion's claims journal (0003): who holds which file, its attempts and outcome. A
-- claim is deleted only when its rename into processing/ failed (nothing was claimed).
GRANT SELECT, INSERT, UPDATE, DELETE ON ingestion_claims TO {pipelines};
GRANT USAGE ON SEQUENCE ingestion_claims_id_seq TO {pipelines};
-- The schema versions (0009): recorded when a file's statistics are stored, and by an
-- approval that writes a new schema (text, who, why filled in once, never overwritten).
GRANT SELECT, INSERT, UPDATE ON schema_versions TO {pipelines};
-- The criticality levels (0002) are reference data: read, never written.
GRANT SELECT ON criticality_levels TO {pipelines};
-- What the Teams channel has been told (0006): problems, their occurrences, the cards. Old
-- occurrences and cards are pruned (DELETE) after ALERT_KEEP_DAYS.
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_problems, alert_occurrences, alert_cards
    TO {pipelines};
GRANT USAGE ON SEQUENCE alert_occurrences_id_seq, alert_cards_id_seq TO {pipelines};
-- The schema evidence of each file (0010), replaced with its statistics on a retry; the
-- proposals made from it, and their decision (the review DAG records who approved).
GRANT SELECT, INSERT, DELETE ON schema_evidence TO {pipelines};
GRANT SELECT, INSERT, UPDATE ON schema_proposals TO {pipelines};
GRANT USAGE ON SEQUENCE schema_proposals_id_seq TO {pipelines};

-- Grafana reads everything of the application and writes nothing (the role is also
-- read-only by default and has a statement timeout: mlsys.db.provision).
GRANT SELECT ON predictions, prediction_keys, ingestion_files, data_quality_issues, feature_drift,
    predicted_files, criticality_levels, ingestion_claims, model_versions, alert_problems,
    alert_occurrences, alert_cards, schema_versions, schema_evidence, schema_proposals
    TO {reader};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {reader};
