"""Headless Chromium for the tests of the HTML pages: the DOM after the page's scripts ran
(:func:`dump_dom`, :func:`body_data`) and a screenshot (:func:`screenshot`). Each run gets a
fresh profile folder, no network services and no sandbox (tests run as root in CI)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("NNFORGE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
TIMEOUT = 120  # seconds one Chromium run may take


def available() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


needs_chromium = pytest.mark.skipif(not available(), reason=f"Chromium not found ({CHROMIUM}; Debian package "
                                                            "'chromium', or set NNFORGE_CHROMIUM)")


def _run(page: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="nnforge-chromium-") as profile:
        cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, Path(page).resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError(f"chromium exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def dump_dom(page: Path, budget_ms: int = 3000) -> str:
    """The page's DOM as HTML once its load event ran (virtual time, ``budget_ms``)."""
    return _run(page, f"--virtual-time-budget={budget_ms}", "--dump-dom")


def body_data(dom: str) -> dict[str, str]:
    """The ``data-*`` attributes of the dumped ``<body>`` (names without ``data-``)."""
    m = re.search(r"<body\b([^>]*)>", dom)
    assert m, "no <body> in the dumped DOM"
    return {k: html.unescape(v) for k, v in re.findall(r'\bdata-([a-z0-9-]+)="([^"]*)"', m.group(1))}


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 3000) -> Path:
    _run(page, "--virtual-time-budget=3000", f"--screenshot={Path(png).resolve()}",
         f"--window-size={width},{height}", "--hide-scrollbars")
    assert Path(png).is_file(), "chromium wrote no screenshot"
    return Path(png)
