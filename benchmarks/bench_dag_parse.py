"""Parse time of the whole dags/ folder, as Airflow's DAG processor measures it (``airflow dags report``).

    .venv/bin/python benchmarks/bench_dag_parse.py

Prints one JSON line: seconds per DAG file (best of three runs) and their total.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.local import VENV_BIN, airflow_env, migrate_db  # noqa: E402


def seconds(duration: str) -> float:
    hours, minutes, secs = duration.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="patchcycle-parse-") as tmp:
        env = airflow_env(Path(tmp), "http://127.0.0.1:9")
        migrate_db(env)
        best: dict[str, float] = {}
        for _ in range(3):
            out = subprocess.run(
                [str(VENV_BIN / "airflow"), "dags", "report", "-o", "json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for row in json.loads(out[out.index("[{") :]):
                best[row["file"]] = min(best.get(row["file"], 1e9), seconds(row["duration"]))
    print(json.dumps({"files": best, "total_seconds": round(sum(best.values()), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
