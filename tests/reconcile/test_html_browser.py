"""The HTML report as a person sees it: rendered by headless Chromium at 1,400 px, measured in the DOM.

Skips where no Chromium is installed, except in CI (CI=true), where a missing browser fails the run
(.ci/run installs Debian's `chromium`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from regsync.reconcile.html import PALETTE, WHAT_TO_DO
from regsync.reconcile.rules import CODES, ReconcileSettings
from regsync.reconcile.run import run_reconcile
from regsync.warehouse.engine import make_engine, migrate
from regsync.warehouse.tables import runs
from tests.reconcile import NOW, ago, booking, registration, seed

WIDTH = 1400
INSTANCE = "https://acme.my.salesforce.com"
CHECKFRONT = "https://acme.checkfront.com"
OBJECT = "conference360__Event_Registration_Submission__c"
BIDI = "cart\u202egnp.exe"

# Appended to a copy of the report (the report itself has no script): measures what is on screen
# and writes it, as JSON, into the DOM that --dump-dom prints.
MEASURE = """
<script>
function box(e) { const r = e.getBoundingClientRect();
  return {x: r.left, y: r.top, w: r.width, h: r.height, text: e.textContent}; }
const labels = [...document.querySelectorAll('svg text')].map(box);
const rows = [...document.querySelectorAll('table')].at(-1).querySelectorAll('tbody tr');
const out = {
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  labels: labels,
  severityColumn: [...rows].map(r => r.cells[0].textContent),
  codeColumn: [...rows].map(r => r.cells[1].textContent),
  summaryCodes: [...document.querySelectorAll('table')][0].querySelectorAll('tbody tr').length,
  banner: document.getElementById('freshness').innerText,
  bannerColour: getComputedStyle(document.getElementById('freshness')).borderTopColor,
  links: [...document.querySelectorAll('a')].map(a => a.href),
  legend: [...document.querySelectorAll('.legend > span')].map(box),
  fills: [...document.querySelectorAll('svg rect')].map(r => r.getAttribute('fill')),
  text: document.body.innerText,
};
const pre = document.createElement('pre'); pre.id = 'measured';
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium is installed: .ci/run must install Debian's chromium")
        pytest.skip("no chromium installed (apt-get install chromium); CI runs this test")
    return found


def _browser(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _history(engine: Engine) -> None:
    """A pull ledger that failed last (the banner warns) and ten reconcile runs for the chart."""
    with engine.begin() as connection:
        for index, outcome in enumerate(("ok", "failed")):
            connection.execute(
                runs.insert().values(
                    run_id=f"00000000-0000-0000-0000-00000000000{index}",
                    job="sync",
                    started_at=ago(hours=3 - index),
                    ended_at=ago(hours=3 - index) + timedelta(minutes=1),
                    outcome=outcome,
                    counts={},
                    api_calls={},
                    message="ConnectError: acme.checkfront.com refused" if outcome == "failed" else None,
                )
            )


def _report(tmp_path: Path) -> Path:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    long_id = "X" * 60  # ids and values with no place to break must still wrap
    regs = [
        registration(
            f"a{i:03d}{long_id}", status="Completed", code=f"CODE-{i}", amount="10.00", created=ago(days=1)
        )
        for i in range(6)
    ]
    regs += [registration(f"d{i:03d}", created=ago(days=9), cart=f"{BIDI}{i}") for i in range(5)]
    regs += [registration(f"u{i}", cart="shared-cart", created=ago(days=1)) for i in range(2)]
    books = [booking(i, f"CODE-{i}", total="12.00", status="PAID", created=ago(days=1)) for i in range(6)]
    books += [booking(100, "ORPHAN-" + "Y" * 50, status="PAID", created=ago(hours=5))]
    seed(engine, registrations_=regs, bookings_=books)
    _history(engine)
    settings = ReconcileSettings()
    for hours in range(9, -1, -1):  # ten runs an hour apart: ten bars, ten two-line labels
        run_reconcile(
            engine,
            settings,
            out_dir=tmp_path / "out",
            fmt="html",
            now=NOW - timedelta(hours=hours),
            instance_url=INSTANCE,
            registration_object=OBJECT,
            checkfront_url=CHECKFRONT,
        )
    engine.dispose()
    return tmp_path / "out" / "report.html"


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _lab(colour: str) -> tuple[float, float, float]:
    """sRGB hex -> CIE L*a*b* (D65)."""
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_palette_colours_are_far_apart() -> None:
    """Every pair of reason-code colours differs by more than 20 CIE76 units (clearly distinct)."""
    assert len(set(PALETTE)) == len(CODES)
    labs = [_lab(c) for c in PALETTE]
    closest = min(
        sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) ** 0.5
        for i, a in enumerate(labs)
        for b in labs[i + 1 :]
    )
    assert closest > 20, closest


def test_every_code_says_what_to_do() -> None:
    assert set(WHAT_TO_DO) == set(CODES)
    assert all(len(text) > 30 for text in WHAT_TO_DO.values())


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium()
    report = _report(tmp_path)
    html = report.read_text(encoding="utf-8")
    assert "\u202e" not in html  # shown as [U+202E], never acting on the text
    assert "[U+202E]" in html
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _browser(binary, measured_page, "--dump-dom", f"--window-size={WIDTH},1000").stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found is not None, dom[-2000:]
    seen: dict[str, Any] = json.loads(
        found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )

    # Fits a 1,400-pixel screen: no sideways scrolling.
    assert seen["clientWidth"] <= WIDTH
    assert seen["scrollWidth"] <= WIDTH, seen["scrollWidth"]

    # The chart's labels (two-line dates, totals, y axis) do not overlap one another.
    labels = [label for label in seen["labels"] if label["w"] > 0]
    assert len([label for label in labels if re.fullmatch(r"\d\d-\d\d", label["text"])]) == 10
    clashes = [
        (a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1 :] if _overlaps(a, b)
    ]
    assert clashes == []
    # Every bar colour is a palette colour; the legend shows all nine codes, none overlapping.
    assert set(seen["fills"]) <= set(PALETTE)
    assert len(seen["legend"]) == len(CODES)
    legend = seen["legend"]
    assert not any(_overlaps(a, b) for i, a in enumerate(legend) for b in legend[i + 1 :])

    # Worst first: severities never go back up; within a severity, codes in order.
    ranks = [("high", "medium", "low").index(s) for s in seen["severityColumn"]]
    assert ranks == sorted(ranks)
    assert set(seen["severityColumn"]) == {"high", "medium", "low"}
    pairs = list(zip(ranks, seen["codeColumn"], strict=True))
    assert pairs == sorted(pairs)

    # Links to both systems, Salesforce at the org's own URL.
    links = seen["links"]
    assert any(link.startswith(f"{INSTANCE}/lightning/r/{OBJECT}/a000") for link in links)
    assert f"{CHECKFRONT}/booking/CODE-0" in links
    assert not any("login.salesforce.com" in link for link in links)

    # The banner warns in words a person reads, and what to do is on the page.
    assert "this report may be wrong or incomplete" in seen["banner"]
    assert "ConnectError: acme.checkfront.com refused" in seen["banner"]
    assert seen["bannerColour"] == "rgb(176, 0, 32)"
    assert WHAT_TO_DO["STALE_DRAFT"] in seen["text"]
    assert "[U+202E]" in seen["text"]

    # A screenshot for a person to look at (kept next to the report).
    shot = tmp_path / "report.png"
    _browser(binary, report, f"--screenshot={shot}", "--window-size=1400,2600")
    assert shot.stat().st_size > 10_000
    if os.environ.get("REGSYNC_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["REGSYNC_KEEP_SCREENSHOT"])


def test_login_host_is_never_linked(tmp_path: Path) -> None:
    """No instance URL configured: ids are shown unlinked with a note, never sent to a login page."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    seed(engine, registrations_=[registration("r1", created=ago(days=9))])
    run_reconcile(
        engine,
        ReconcileSettings(),
        out_dir=tmp_path,
        fmt="both",
        now=NOW,
        instance_url="https://login.salesforce.com",
        registration_object=OBJECT,
    )
    engine.dispose()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "login.salesforce.com" not in page.replace("https://login.salesforce.com", "")
    assert "href=" not in page
    assert "set <code>salesforce.instance_url</code>" in page
    assert "login.salesforce.com" not in (tmp_path / "mismatches.csv").read_text(encoding="utf-8")
