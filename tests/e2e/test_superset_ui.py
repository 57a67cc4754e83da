"""Superset's dashboards in a real browser (chromium, headless), as a user sees them: sign in, open
each dashboard of the bundle (superset/assets), wait until every chart has rendered, and fail on any
chart that shows an error. A full-page screenshot of each dashboard goes to
var/reports/screenshots/superset-<slug>.png."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from common.settings import superset_settings
from tests.browser_support import browser, screenshot
from tests.superset_support import Bundle, load_bundle

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow, pytest.mark.browser]

#: generous: every chart is a Trino query, on a machine the whole stack shares
RENDER_TIMEOUT_S = 180
UI_TIMEOUT_MS = 60_000
CHART = '[data-test="dashboard-component-chart-holder"]'
# rendered: the chart drew something (an echarts canvas or svg, table cells, a big number)
RENDERED = f'{CHART} [data-test="slice-container"]:has(canvas, svg, td, .header-line)'
LOADING = f'{CHART} [data-test="loading-indicator"], {CHART} .loading'
# Superset's error alerts in a chart (ErrorAlert / ErrorMessageWithStackTrace, antd alerts)
ERRORS = f'{CHART} [data-test="error-alert"], {CHART} .ant-alert-error, {CHART} [role="alert"]'

BUNDLE: Bundle = load_bundle()
DASHBOARDS = sorted((doc["slug"], uuid) for uuid, doc in BUNDLE.dashboards.items())


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with browser() as b:
        yield signed_in(b)


def signed_in(b: Browser) -> Page:
    s = superset_settings()
    page = b.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{s.superset_url}/login/")
    page.locator('[data-test="username-input"]').fill(s.superset_admin_user)
    page.locator('[data-test="password-input"]').fill(s.superset_admin_password.get_secret_value())
    page.locator('[data-test="login-button"]').click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def wait_rendered(page: Page, expected: int) -> None:
    """Until the page holds `expected` charts, each rendered, and no spinner is left; fails early
    on a chart error."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while True:
        errors = page.locator(ERRORS)
        if errors.count():
            texts = [t.strip()[:300] for t in errors.all_inner_texts()]
            pytest.fail(f"{page.url}: {errors.count()} chart error(s): {texts}")
        holders, rendered = page.locator(CHART).count(), page.locator(RENDERED).count()
        if holders == expected and rendered == expected and page.locator(LOADING).count() == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{page.url}: {rendered}/{expected} charts rendered ({holders} holders, "
                f"{page.locator(LOADING).count()} still loading) after {RENDER_TIMEOUT_S}s"
            )
        page.wait_for_timeout(500)


@pytest.mark.parametrize(("slug", "uuid"), DASHBOARDS, ids=[slug for slug, _ in DASHBOARDS])
def test_dashboard_renders_every_chart(page: Page, slug: str, uuid: str) -> None:
    expected = len(BUNDLE.dashboard_charts(uuid))
    page.goto(f"{superset_settings().superset_url}/superset/dashboard/{slug}/")
    header = page.locator('[data-test="dashboard-header-wrapper"]')
    expect(header).to_contain_text(BUNDLE.dashboards[uuid]["dashboard_title"], timeout=UI_TIMEOUT_MS)
    wait_rendered(page, expected)
    assert screenshot(page, f"superset-{slug}").stat().st_size > 0
