"""``python -m fleetsim``: serve the emulator, or read its ground truth and call counts."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.request
from pathlib import Path

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "demo.yaml"


def _serve(args: argparse.Namespace) -> int:
    from fleetsim.scenario import ScenarioError, load_scenario
    from fleetsim.server import FleetsimServer

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"fleetsim: {exc}", file=sys.stderr)
        return 2
    server = FleetsimServer(scenario, port=args.port)

    def ready(srv: FleetsimServer) -> None:
        print(
            f"fleetsim listening on {srv.url} ({len(srv.state.hosts)} hosts), mail relay on "
            f"127.0.0.1:{srv.mail.port}",
            flush=True,
        )
        if args.ready_file:
            tmp = Path(args.ready_file).with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "url": srv.url,
                        "pid": os.getpid(),
                        "hosts": len(srv.state.hosts),
                        "smtp_port": srv.mail.port,
                    }
                )
            )
            tmp.replace(args.ready_file)

    def stop(signum: int, frame: object) -> None:
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(on_ready=ready)
    return 0


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback control plane
        return json.load(resp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the emulator on 127.0.0.1")
    serve.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario YAML (default: demo)")
    serve.add_argument("--port", type=int, default=5055, help="port on 127.0.0.1 (0 picks a free one)")
    serve.add_argument("--ready-file", help="write {url, pid} here once serving")
    truth = sub.add_parser("ground-truth", help="print what really happened to each host (JSON)")
    truth.add_argument("--url", default="http://127.0.0.1:5055")
    truth.add_argument("--tenant")
    calls = sub.add_parser("calls", help="print the API calls received, by service and action")
    calls.add_argument("--url", default="http://127.0.0.1:5055")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "ground-truth":
        query = f"?tenant={args.tenant}" if args.tenant else ""
        print(json.dumps(_get(f"{args.url}/fleetsim/ground-truth{query}"), indent=2))
        return 0
    print(json.dumps(_get(f"{args.url}/fleetsim/calls"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
