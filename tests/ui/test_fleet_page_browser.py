"""The Patchcycle page in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``scripts/install-services.sh``) driven by Playwright, against a real ``airflow api-server`` process on
loopback (SimpleAuthManager, a viewer with a known password, SQLite metadata DB) and fleetsim's S3.

The user signs in on Airflow's login page, opens "Patchcycle" from the UI's navigation, sees every
tenant's row in the UI's plugin frame, downloads a report through the page's link and follows a run
link into the UI. Screenshots of each step are kept in ``var/test-artifacts/ui/`` (printed below).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from devtools.local import REPO, VENV_BIN, airflow_env, migrate_db
from devtools.stack import (
    AUTH_MANAGER,
    COMPONENT_COMMANDS,
    AirflowClient,
    free_port,
    start_component,
    stop_components,
    wait_until,
)
from patchcycle.config.loader import load_tenants
from tests.ui.conftest import DEC, REFUSAL, UNREACHABLE_TENANT

# Process-heavy (an api-server, a browser): never beside the process stack's tests.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack"), pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "var" / "test-artifacts" / "ui"
WAIT_MS = 60_000  # generous: two busy cores
USER = "sre"


def chromium() -> Path:
    """Debian's Chromium; a missing browser fails the test (it is part of the project's setup)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: the UI tests drive Debian's Chromium; install it with "
            "scripts/install-services.sh (or `make install`)",
            pytrace=False,
        )
    return CHROMIUM


@contextmanager
def running_api_server(fleet_url: str, work: Path) -> Iterator[tuple[str, str]]:
    """``airflow api-server`` on a free loopback port, reading the tenants' stores on fleetsim; yields
    its URL and the viewer's password."""
    home = work / "airflow"
    password = secrets.token_urlsafe(12)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = airflow_env(home, fleet_url)  # the DAGs and plugins folders, every tenant's connections
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)  # set by the test session; not a server's
    env.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(work / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
        }
    )
    (work / "passwords.json").write_text(json.dumps({USER: password}))
    migrate_db(env)
    server = start_component(
        "apiserver", [str(VENV_BIN / "airflow"), *COMPONENT_COMMANDS["apiserver"]], env, work
    )
    client = AirflowClient(url, USER, password)
    try:

        def up() -> bool:
            server.check_alive()
            return client.version() is not None

        wait_until("api-server /api/v2/version", up, timeout=180)
        yield url, password
    finally:
        client.close()
        stop_components([server])


def test_an_sre_opens_the_patchcycle_page_from_the_ui(fleet, packs, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait as long as actions do: Playwright's expect() has its own 5 s default, and on two busy
    # cores the UI once rendered its navigation later than that (its labels still untranslated keys).
    expect.set_options(timeout=WAIT_MS)
    executable = chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {ARTIFACTS}")
    alpha, birch = packs["cu_alpha"], packs["cu_birch"]
    with running_api_server(fleet.url, tmp_path) as (url, password), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(accept_downloads=True, viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        try:
            # Airflow's own login: the UI sends an anonymous visitor there.
            page.goto(url)
            page.wait_for_url(re.compile(r"/auth/login"))
            page.locator("input[name=username]").fill(USER)
            page.locator("input[name=password]").fill(password)
            page.screenshot(path=ARTIFACTS / "1-login.png")
            page.get_by_role("button", name="Sign in").click()

            # The page, from the navigation, in the UI's plugin frame.
            nav = page.get_by_role("link", name="Patchcycle")
            expect(nav).to_be_visible()
            nav.click()
            expect(page).to_have_url(re.compile(r"/plugin/patchcycle"))
            frame = page.frame_locator("iframe[title=Patchcycle]")
            rows = frame.locator("#fleet tbody tr")
            expect(rows).to_have_count(len(load_tenants().tenants))
            for tenant in load_tenants().tenants:
                expect(frame.locator(f"tr[data-tenant={tenant.id}]")).to_contain_text(tenant.display_name)
            row = frame.locator("tr[data-tenant=cu_alpha]")
            cycle = alpha.evidence["cycle"]
            expect(row).to_contain_text(cycle["run_id"])
            expect(row).to_contain_text(cycle["outcome"])
            failed = next(h for h in alpha.evidence["hosts"] if h["final_state"] == "failed")
            expect(row).to_contain_text(f"{failed['name']} ({failed['environment']}): {failed['reason']}")
            expect(row).to_contain_text(f"last attempt refused on {DEC}: {REFUSAL}")
            expect(frame.locator(f"tr[data-tenant={birch.tenant_id}]")).to_contain_text(
                birch.evidence["cycle"]["outcome"]
            )
            expect(frame.locator(f"tr[data-tenant={UNREACHABLE_TENANT}] [role=alert]")).to_contain_text(
                f"{UNREACHABLE_TENANT}: evidence store s3://"
            )
            page.screenshot(path=ARTIFACTS / "2-patchcycle-page.png")

            # The report link streams the pack's PDF from the tenant's store through the page's app.
            report = row.get_by_role("link", name="report.pdf")
            expect(report).to_have_attribute("href", f"/patchcycle/tenants/cu_alpha/packs/{alpha.report_key}")
            with page.expect_download() as download:
                report.click()
            assert Path(download.value.path()).read_bytes() == alpha.report
            assert download.value.suggested_filename.endswith("report.pdf")

            # The run link opens the run in the UI itself, not inside the frame.
            row.get_by_role("link", name=cycle["run_id"]).click()
            run_path = f"/dags/{alpha.dag_id}/runs/{quote(cycle['run_id'], safe='')}"
            expect(page).to_have_url(f"{url}{run_path}")
            expect(nav).to_be_visible()  # the UI itself, rendered at the run's route
            page.screenshot(path=ARTIFACTS / "3-run-link.png")
        except Exception:
            page.screenshot(path=ARTIFACTS / "failure.png")
            raise
        finally:
            context.close()
            browser.close()
