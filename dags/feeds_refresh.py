"""Daily refresh of the vulnerability feeds (an Apache airflow dag); see dag_factory.build_feeds_dag."""

from patchcycle.dag_factory import build_feeds_dag

patchcycle_feeds = build_feeds_dag()
