# The image every Airflow service of docker-compose.yaml runs: Airflow 3.3.2 with Patchcycle's locked
# dependencies (requirements.txt, exported from uv.lock). DAGs, the package (plugins/) and the tenant
# files (include/) are mounted by compose; bake them in with COPY for an immutable image instead.
# Python 3.11: the version uv.lock is resolved for.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt
