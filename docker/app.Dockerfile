# syntax=docker/dockerfile:1
# Our image for the model service, the UI and the one-shot jobs (migrations, training): the
# `app` environment from its lock file plus the repository's code, as `make setup` builds it
# natively. Build context: the repository root (see docker-compose.yml).
FROM python:3.11-slim

# LightGBM's wheel links against the GNU OpenMP runtime, which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/mlsys
# The lock file alone first: code edits then rebuild in seconds, not minutes.
COPY requirements/app.txt requirements/app.txt
RUN pip install -r requirements/app.txt

COPY mlsys mlsys
COPY ops ops
COPY service service
COPY frontend frontend
COPY training training
COPY schema schema
COPY sql sql
# As natively (scripts/envs.sh): the code is importable from anywhere through a .pth file.
RUN echo /opt/mlsys > "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mlsys_worktree.pth"

# Not root; uid 50000 and group 0 like the Airflow image, so both can write the data volume.
RUN useradd --uid 50000 --gid 0 --no-create-home --home-dir /opt/mlsys mlsys
USER 50000:0
ENV DATA_DIR=/data \
    MODEL_DIR=/models \
    VAR_DIR=/tmp/mlsys-var

EXPOSE 8000 8501
CMD ["python", "-m", "uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", "8000"]
