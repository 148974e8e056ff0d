"""Developer tooling: the local demo and the test harness's Airflow-against-fleetsim environment.

Not part of the product (the DAGs and plugins never import it); it wires the product to fleetsim the
way an operator wires it to real clouds: through Airflow connections and configuration.
"""
