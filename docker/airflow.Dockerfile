# syntax=docker/dockerfile:1
# The official Airflow image (same version as requirements/airflow.in) extended with
#  - our locked `airflow` environment (providers, pymsteams, ...) and the repository's code;
#  - /opt/tfdv-venv, a separate interpreter with TFDV from requirements/tfdv.txt: TFDV's pins
#    conflict with Airflow's (protobuf 4 against 7), so, as natively with .venvs/tfdv, the
#    validation task runs there through @task.external_python. The DAGs read its path from
#    TFDV_PYTHON, which docker-compose.yml sets to /opt/tfdv-venv/bin/python.
# Build context: the repository root (see docker-compose.yml). The TFDV layer is about 2.5 GB.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

USER root
COPY requirements/tfdv.txt /opt/mlsys/requirements/tfdv.txt
RUN python3.11 -m venv /opt/tfdv-venv \
    && /opt/tfdv-venv/bin/pip install --no-cache-dir -r /opt/mlsys/requirements/tfdv.txt \
    && echo /opt/mlsys > "$(/opt/tfdv-venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mlsys_worktree.pth"

# VAR_DIR of the Airflow containers (the airflow-var volume takes this folder's owner and mode):
# the simple auth manager's passwords file lives in its secrets/ (0600).
RUN mkdir -p /opt/airflow/var && chown airflow:0 /opt/airflow/var && chmod 0700 /opt/airflow/var

USER airflow
COPY requirements/airflow.txt /opt/mlsys/requirements/airflow.txt
# The lock pins apache-airflow itself at the image's version, so nothing is up- or downgraded.
RUN pip install --no-cache-dir -r /opt/mlsys/requirements/airflow.txt

COPY --chown=airflow:0 mlsys /opt/mlsys/mlsys
COPY --chown=airflow:0 pipelines /opt/mlsys/pipelines
COPY --chown=airflow:0 schema /opt/mlsys/schema
COPY --chown=airflow:0 sql /opt/mlsys/sql
# Beside Airflow's own packages, wherever this image keeps them (user site or virtualenv).
RUN echo /opt/mlsys > "$(python -c 'import airflow, pathlib; print(pathlib.Path(airflow.__file__).parents[1])')/mlsys_worktree.pth"

ENV TFDV_PYTHON=/opt/tfdv-venv/bin/python \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/mlsys/pipelines/dags \
    DATA_DIR=/data \
    MODEL_DIR=/models
