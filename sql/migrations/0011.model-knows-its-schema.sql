-- depends: 0007.model-versions
-- The model knows its schema (issue 16 point 4).

-- The features of a prediction whose value no training row had (mlsys/training_values.py:
-- a category absent from the training rows, a number outside the training minimum and
-- maximum, a missing value where training had none), in feature order; '{}' for most. The
-- training values come from the model's artefact (metadata.json, `seen_in_training`).
-- Rows stored before this migration get '{}': they were not checked, nothing is claimed.
-- A constant default: PostgreSQL adds the column without rewriting the table.
ALTER TABLE predictions
    ADD COLUMN unseen_features text[] NOT NULL DEFAULT '{}';

-- The schema a model was trained with (metadata.json's `schema_version`): its human version
-- and the SHA-256 of the schema file's content. NULL for a model trained before they were
-- recorded.
ALTER TABLE model_versions
    ADD COLUMN schema_version text CHECK (length(schema_version) BETWEEN 1 AND 200),
    ADD COLUMN schema_sha256 text CHECK (schema_sha256 ~ '^[0-9a-f]{64}$');
