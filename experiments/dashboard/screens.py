"""Serve the dashboard and open every page in headless Chromium: the browser test and
``benchmarks/dashboard_screens.py`` (screenshots for a closing note) share this.

The browser is Debian's ``chromium`` driven by Playwright with ``executable_path``; Playwright
never downloads one here.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from data_feeds.errors import VolsuiteError

__all__ = ["CHROMIUM_FLAGS", "PAGES", "capture", "chromium_path", "free_port", "serve"]

PAGES: dict[str, str] = {
    "runs": "Runs",
    "sweep": "Sweep",
    "surface": "Surface",
    "term_vrp": "Term structure and VRP",
    "data_quality": "Data quality",
    "paper": "Paper",
}
"""URL path of each page (``""`` for the default ``runs``) -> its title."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str | None:
    """Debian's Chromium (``chromium`` on ``PATH``, else ``/usr/bin/chromium``), or None."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    results: Path, *, port: int | None = None, timeout: float = 120.0, cwd: Path | None = None
) -> Iterator[str]:
    """Run ``volsuite dashboard --headless`` on ``results`` until the block ends.

    Parameters
    ----------
    results : Path
        Results folder given as ``--results``.
    port : int, optional
        Default a free port.
    timeout : float
        Seconds to wait for ``/_stcore/health`` to answer ``ok``.
    cwd : Path, optional
        Working directory of the server (default the repository root).

    Yields
    ------
    str
        The base URL ``http://127.0.0.1:<port>``.

    Raises
    ------
    data_feeds.errors.VolsuiteError
        The server exited or did not answer ``ok`` within ``timeout`` (its output is quoted).
    """
    port = port or free_port()
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "experiments.cli", "dashboard", "--headless"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--results", str(results)],
        cwd=cwd or root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        health = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                    health = resp.read().decode()
            except OSError:
                health = ""
            if health == "ok":
                break
            time.sleep(0.5)
        if health != "ok":
            said = proc.stdout.read() if proc.poll() is not None and proc.stdout else ""
            raise VolsuiteError(
                f"volsuite dashboard on {base}: no 'ok' from /_stcore/health within "
                f"{timeout:g} s (exit {proc.poll()}): {said.strip()[-500:]}"
            )
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def capture(
    base: str,
    out_dir: Path,
    *,
    chromium: str | None = None,
    timeout_ms: int = 300_000,
    width: int = 1400,
    height: int = 2400,
) -> dict[str, Path]:
    """Open every page of :data:`PAGES` in headless Chromium and save a full-page screenshot.

    Streamlit scrolls inside its own container, so the picture is the viewport
    (``width`` x ``height`` CSS pixels): tall enough for the first charts of every page.

    A page counts as rendered when its title heading is shown, its plotly charts are drawn
    (every page but Paper has one on a populated results folder), Streamlit's "running" status is
    gone and no exception box is on it.

    Returns
    -------
    dict of str to Path
        Page -> ``<out_dir>/<page>.png``.

    Raises
    ------
    data_feeds.errors.VolsuiteError
        No Chromium, or a page shows an exception (names the page and the message).
    """
    from playwright.sync_api import sync_playwright

    exe = chromium or chromium_path()
    if exe is None:
        raise VolsuiteError("no Chromium found (install Debian's 'chromium' package)")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots: dict[str, Path] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            for slug, title in PAGES.items():
                page.goto(f"{base}/{'' if slug == 'runs' else slug}", timeout=timeout_ms)
                page.get_by_role("heading", name=title, exact=True).first.wait_for(
                    timeout=timeout_ms
                )
                if slug != "paper":
                    page.locator(".js-plotly-plot").first.wait_for(timeout=timeout_ms)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                    timeout=timeout_ms,
                )
                page.wait_for_timeout(1500)  # let plotly finish drawing before the picture
                errors = page.locator('[data-testid="stException"]')
                if errors.count():
                    raise VolsuiteError(f"page {slug}: {errors.first.inner_text()[:500]}")
                if "Traceback (most recent call last)" in page.content():
                    raise VolsuiteError(f"page {slug}: a traceback is shown")
                shots[slug] = out_dir / f"{slug}.png"
                page.screenshot(path=str(shots[slug]), full_page=True)
        finally:
            browser.close()
    return shots
