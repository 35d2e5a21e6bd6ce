"""A shopper buys a telescope in a real headless Chromium, through the stage's ALB, with every service of
the shop behind it: home -> product page -> add to cart -> cart -> checkout form -> confirmation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect, sync_playwright

from tests.integration.stages import Stage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 20_000
EXPLORASCOPE = "OLJCESPC7Z"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no headless Chromium at {CHROMIUM} (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def storefront(stage: Stage) -> str:
    return stage.shop_url


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def test_a_shopper_buys_a_telescope_and_sees_the_order_id(
    storefront: str, page: Page, tmp_path: Path
) -> None:
    """Leaves screenshots of the home and confirmation pages in tmp_path for a person to look at."""
    failures: list[str] = []

    def record_failure(response: Response) -> None:
        if response.status >= 400:
            failures.append(f"{response.status} {response.url}")

    page.on("response", record_failure)
    page.on("requestfailed", lambda request: failures.append(f"failed {request.url}"))

    page.goto(f"{storefront}/")
    expect(page.locator(".product-card").first).to_be_visible()
    expect(page.get_by_role("search")).to_be_visible()
    page.screenshot(path=str(tmp_path / "home.png"), full_page=True)

    page.locator(f'.product-card a[href="/product/{EXPLORASCOPE}"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("National Park Foundation Explorascope")
    expect(page.locator(".recommendations .product-card")).to_have_count(5)

    page.get_by_label("Quantity").select_option("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page).to_have_url(re.compile(r"/cart$"))
    expect(page.locator(".cart-line")).to_have_count(1)
    expect(page.locator(".cart-line .quantity")).to_have_text("2")
    expect(page.locator(".subtotal")).to_have_text("$203.92")

    page.get_by_label("E-mail address").fill("stargazer@example.com")
    page.get_by_label("Street address").fill("1 Observatory Road")
    page.get_by_label("Zip code").fill("91023")
    page.get_by_label("City").fill("Mount Wilson")
    page.get_by_label("State").fill("CA")
    page.get_by_label("Country").fill("United States")
    page.get_by_label("Credit card number").fill("4432 8015 6152 0454")
    page.get_by_label("Month").select_option("1")
    page.get_by_label("Year").select_option("2030")
    page.get_by_label("CVV").fill("672")
    page.get_by_role("button", name="Place order").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your order is complete!")
    order_id = page.locator(".order-id").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Za-z-]{8,}", order_id), order_id
    expect(page.locator(".order-item")).to_have_count(1)
    expect(page.locator("address")).to_contain_text("1 Observatory Road")
    page.screenshot(path=str(tmp_path / "confirmation.png"), full_page=True)

    page.get_by_role("link", name="Cart").click()
    expect(page.get_by_text("Your shopping cart is empty.")).to_be_visible()
    assert failures == []
