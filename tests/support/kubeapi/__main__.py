"""Command line: run the test API server in the foreground or in the background, and stop it.

    python -m tests.support.kubeapi serve --port 0 --kubeconfig /tmp/kubeapi/kubeconfig \\
        [--fixture tests/support/kubeapi/fixtures/gpu-nodes.yaml] [--nodes 1000] [--version v1.35.2] \\
        [--ready-controller] [--background]
    python -m tests.support.kubeapi stop --kubeconfig /tmp/kubeapi/kubeconfig

``serve`` writes a kubeconfig pointing at the server and a pid file (``<kubeconfig>.pid`` unless
``--pid-file``); SIGTERM or SIGINT stop it cleanly and remove the pid file. ``--background`` starts
the server as a detached process, waits until it answers, prints its URL and returns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from .nodes import generate_nodes
from .server import DEFAULT_VERSION, KubeAPIServer


def _pid_file(args: argparse.Namespace) -> Path:
    return Path(args.pid_file) if args.pid_file else Path(f"{args.kubeconfig}.pid")


def _serve(args: argparse.Namespace) -> int:
    fixtures: list = list(args.fixture or [])
    if args.nodes:
        fixtures.append(generate_nodes(args.nodes, args.gpus_per_node))
    server = KubeAPIServer(
        port=args.port,
        version=args.version,
        fixtures=tuple(fixtures),
        ready_controller=args.ready_controller,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    pid_file = _pid_file(args)
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
        server.write_kubeconfig(args.kubeconfig)
        print(f"kubeapi: serving {server.url} (kubeconfig {args.kubeconfig}, pid {os.getpid()})", flush=True)
        stop.wait()
    finally:
        server.stop()
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    return 0


def _background(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "tests.support.kubeapi", *[a for a in sys.argv[1:] if a != "--background"]]
    kubeconfig = Path(args.kubeconfig)
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()
    log = Path(f"{kubeconfig}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[3]
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"kubeapi: server exited with {process.returncode}; see {log}:\n{log.read_text()}", file=sys.stderr)
            return 1
        if kubeconfig.is_file():
            server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{server}/readyz", timeout=2):
                print(f"kubeapi: serving {server} (kubeconfig {kubeconfig}, pid {process.pid}, log {log})")
                return 0
        time.sleep(0.1)
    process.terminate()
    print("kubeapi: server did not become ready within 60 s", file=sys.stderr)
    return 1


def _stop(args: argparse.Namespace) -> int:
    pid_file = _pid_file(args)
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        print(f"kubeapi: no server running (no pid file {pid_file})", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        print(f"kubeapi: process {pid} was already gone; removed {pid_file}", file=sys.stderr)
        return 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and pid_file.exists():
        time.sleep(0.1)
    if pid_file.exists():
        print(f"kubeapi: process {pid} did not stop within 15 s", file=sys.stderr)
        return 1
    print(f"kubeapi: stopped {pid}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.kubeapi", description=__doc__.split("\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (foreground unless --background)")
    serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    serve.add_argument("--kubeconfig", required=True, help="where to write a kubeconfig for the server")
    serve.add_argument("--fixture", action="append", help="YAML file of objects to pre-populate (repeatable)")
    serve.add_argument("--nodes", type=int, default=0, help="also generate this many GPU nodes")
    serve.add_argument("--gpus-per-node", type=int, default=8)
    serve.add_argument("--version", default=DEFAULT_VERSION, help="gitVersion answered by /version")
    serve.add_argument(
        "--ready-controller",
        action="store_true",
        help="run the controller, scheduler and kubelet doubles (controllers.py, kubelet.py) after each write",
    )
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM); the kubeconfig trusts it as CA")
    serve.add_argument("--tls-key", help="private key of --tls-cert")
    serve.add_argument("--pid-file", help="default: <kubeconfig>.pid")
    serve.add_argument("--background", action="store_true", help="detach, wait until ready, print the URL")
    stop = commands.add_parser("stop", help="stop a server started by serve")
    stop.add_argument("--kubeconfig", help="the kubeconfig given to serve (its pid file is <kubeconfig>.pid)")
    stop.add_argument("--pid-file")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _background(args) if args.background else _serve(args)
    if not args.kubeconfig and not args.pid_file:
        parser.error("stop needs --kubeconfig or --pid-file")
    return _stop(args)


if __name__ == "__main__":
    sys.exit(main())
