-- The metadata of every model that served predictions (models/metadata.json, written by
-- `make train`), recorded by the service when it loads the model. `predictions.model_version`
-- names a row here, so the dashboards and alert rules read a model's training prior (and its
-- features, metrics, training time) with SQL instead of a constant of one data set.
CREATE TABLE model_versions (
    version             text PRIMARY KEY CHECK (length(version) BETWEEN 1 AND 200),
    trained_at          timestamptz,
    target              text NOT NULL,
    positive_class      text NOT NULL,
    -- Share of the positive class in the training rows: the prior the predicted share is
    -- compared with (Grafana's "Drift and predictions" dashboard, alert mlsys-class-shift).
    positive_rate_train double precision NOT NULL CHECK (positive_rate_train BETWEEN 0 AND 1),
    -- The serving features as the model-info endpoint describes them (name, kind, domain, range).
    features            jsonb NOT NULL CHECK (jsonb_typeof(features) = 'array'),
    metrics             jsonb NOT NULL DEFAULT '{}',
    -- The whole metadata.json, for whatever a dashboard needs next.
    metadata            jsonb NOT NULL,
    first_loaded_at     timestamptz NOT NULL DEFAULT now()
);
