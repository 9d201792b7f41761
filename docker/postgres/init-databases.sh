#!/bin/bash
# Run once by the postgres image, on an empty data volume (/docker-entrypoint-initdb.d), as
# POSTGRES_USER. Creates what `make up` creates natively (the application database and
# Airflow's, one server) plus the read-only role Grafana logs in with.
#
# Values travel as psql variables (:"identifier", :'literal'), never spliced into the SQL text.
# The application's tables are created later, by the migrations (service `db-migrate`, running
# as POSTGRES_USER): the default privileges below give the reader SELECT on each of them.
set -euo pipefail

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v app_db="${APP_DB_NAME:-mlsys}" \
    -v airflow_db="${AIRFLOW_DB_NAME:-airflow}" \
    -v owner="$POSTGRES_USER" \
    -v reader="${GRAFANA_DB_USER:-grafana_reader}" \
    -v reader_password="${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD is not set}" <<'SQL'
CREATE DATABASE :"app_db";
CREATE DATABASE :"airflow_db";
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
-- Grafana's user must not read Airflow's metadata (connections, variables) nor write anywhere.
REVOKE CONNECT ON DATABASE :"airflow_db" FROM PUBLIC;
\connect :"app_db"
GRANT CONNECT ON DATABASE :"app_db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
-- Dashboards never need more than a few seconds; a runaway panel query must not hold the server.
ALTER ROLE :"reader" SET statement_timeout = '30s';
ALTER ROLE :"reader" SET default_transaction_read_only = on;
SQL
