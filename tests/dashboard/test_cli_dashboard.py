"""``cloaca dashboard`` as a user types it, and the extra staying optional."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from cloaca.cli.main import main
from dashboard_support import fill_small


def test_dashboard_on_a_missing_database_fails_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    for args in (
        ["--db", f"sqlite://{path}", "dashboard"],
        ["dashboard", "--db", f"sqlite://{path}"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: cloaca database not found at sqlite://{path}")
        assert list(tmp_path.iterdir()) == []


def test_dashboard_serves_pages_on_localhost(db_url: str) -> None:
    fill_small(db_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "cloaca"), "dashboard", "--db", db_url]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--read-only"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner and "read-only" in banner
        page = _get(f"http://127.0.0.1:{port}/triggers", server)
        assert page.status_code == 200 and "watcher" in page.text
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _get(url: str, server: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        assert server.poll() is None, "the dashboard exited"
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_import_cloaca_pulls_in_no_dashboard_dependency() -> None:
    code = (
        "import sys, cloaca, cloaca.cli.main\n"
        "heavy = {'starlette', 'uvicorn', 'jinja2', 'prometheus_client', 'playwright'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
