"""``python -m fleetsim``: serve the emulator, or read its ground truth and call counts."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "demo.yaml"

EXIT_CODES = """exit codes:
  0  done (serve: stopped by SIGTERM or Ctrl-C)
  1  serve: the port is in use
  2  bad usage or input: an invalid scenario, a port outside 0-65535, a missing or malformed --url
  3  fleetsim could not be reached or read at --url (one line names the URL and the cause)"""


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


class Unreachable(Exception):
    """fleetsim did not answer at a URL, or answered with something that is not its JSON."""


def _get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback control plane
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise Unreachable(f"cannot reach fleetsim at {url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, a body that is not JSON
        raise Unreachable(f"cannot read {url}: {' '.join(str(exc).split()) or type(exc).__name__}") from exc


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port 0-65535")
    return port


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s)://host:port URL")
    return value.rstrip("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fleetsim",
        description=__doc__.split("\n")[0],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the emulator on 127.0.0.1", epilog=EXIT_CODES)
    serve.formatter_class = argparse.RawDescriptionHelpFormatter
    serve.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario YAML (default: demo)")
    serve.add_argument("--port", type=_port, default=5055, help="port on 127.0.0.1 (0 picks a free one)")
    serve.add_argument("--ready-file", help="write {url, pid} here once serving")
    url_help = "fleetsim's URL, as `serve` printed it (e.g. http://127.0.0.1:5055)"
    truth = sub.add_parser("ground-truth", help="print what really happened to each host (JSON)")
    truth.add_argument("--url", type=_url, required=True, help=url_help)
    truth.add_argument("--tenant")
    calls = sub.add_parser("calls", help="print the API calls received, by service and action")
    calls.add_argument("--url", type=_url, required=True, help=url_help)
    for reader in (truth, calls):
        reader.epilog, reader.formatter_class = EXIT_CODES, argparse.RawDescriptionHelpFormatter
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    try:
        if args.command == "ground-truth":
            query = f"?{urlencode({'tenant': args.tenant})}" if args.tenant else ""
            body = _get(f"{args.url}/fleetsim/ground-truth{query}")
        else:
            body = _get(f"{args.url}/fleetsim/calls")
    except Unreachable as exc:
        print(f"fleetsim: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
