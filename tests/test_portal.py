"""The privacy portal driven in a real headless Chromium (Debian's, through Playwright).

One uvicorn server per module on 127.0.0.1 (free port), its own SQLite database, outbox
and CRM snapshot; a movable clock for expiry. Screenshots of every page go to
``reports/screenshots/portal/`` (git-ignored) for reviewers.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import func, select

from mobility.config import load_config
from portal.store import codes, consent_changes, sessions
from tests.conftest import ROOT
from tests.portal_support import CHROMIUM, PortalServer, portal_conf, shot, write_subscribers

playwright_api = pytest.importorskip("playwright.sync_api")

CUSTOMER_A = "4917011110001"   # opts out
CUSTOMER_B = "4917011110002"   # opts in to offers (German)
CUSTOMER_C = "4917011110003"   # wrong codes, attempt limit
CUSTOMER_D = "4917011110004"   # expired code
CUSTOMER_E = "4917011110005"   # no-enumeration twin
STRANGER = "4917099990005"     # well-formed, not a customer
TTL, ATTEMPTS, PER_NUMBER = 120, 3, 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("portal")
    conf = portal_conf(tmp, code_ttl_seconds=TTL, max_attempts_per_code=ATTEMPTS,
                       max_codes_per_number_per_hour=PER_NUMBER, max_codes_per_client_per_hour=100)
    write_subscribers(load_config(conf), [CUSTOMER_A, CUSTOMER_B, CUSTOMER_C, CUSTOMER_D, "+" + CUSTOMER_E])
    with PortalServer(conf) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(locale="en-GB", viewport={"width": 900, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


def changes(server, number: str) -> list[tuple[bool, bool, str]]:
    with server.engine.connect() as conn:
        rows = conn.execute(select(consent_changes.c.analytics_opt_out, consent_changes.c.location_offers_opt_in,
                                   consent_changes.c.channel)
                            .where(consent_changes.c.msisdn == number).order_by(consent_changes.c.id)).all()
    return [tuple(r) for r in rows]


def test_opt_out_of_analytics(server, page, caplog):
    caplog.set_level(logging.INFO, logger="portal")
    page.goto(f"{server.url}/?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    shot(page, "1-start-en")
    page.fill("#msisdn", "+49 170 1111 0001")  # blanks and '+' are normalized away
    page.click("button[type=submit]")
    page.wait_for_url("**/verify")
    assert "If +4917011110001 is one of our numbers" in page.inner_text("main")
    shot(page, "2-verify-en")
    page.fill("#code", server.last_code(CUSTOMER_A))
    page.click("button[type=submit]")
    page.wait_for_url("**/choices")
    # Nothing recorded yet: the defaults are shown (analytics allowed, no offers).
    assert page.is_checked("#analytics-yes") and page.is_checked("#offers-no")
    shot(page, "3-choices-en")
    page.check("#analytics-no")
    page.click("form[action='/choices'] button[type=submit]")
    page.wait_for_url("**/choices?saved=saved")
    assert "Saved." in page.inner_text("main")
    assert page.is_checked("#analytics-no") and page.is_checked("#offers-no")
    shot(page, "4-saved-en")
    assert changes(server, CUSTOMER_A) == [(True, False, "portal")]
    # The number is in clear only in the consent log (the export needs it there).
    with server.engine.connect() as conn:
        for table in (codes, sessions):
            dump = repr(conn.execute(select(table)).all())
            assert CUSTOMER_A not in dump and CUSTOMER_A[2:] not in dump, table.name
    # Logs carry a keyed hash, never the number.
    assert "change recorded" in caplog.text
    for form in (CUSTOMER_A, "170 1111 0001", "1111 0001"):
        assert form not in caplog.text
    # Saving the same choice again appends nothing.
    page.click("form[action='/choices'] button[type=submit]")
    page.wait_for_url("**/choices?saved=unchanged")
    assert changes(server, CUSTOMER_A) == [(True, False, "portal")]
    page.click("form[action='/logout'] button")
    page.wait_for_url("**/?notice=signed_out")
    assert "You have been signed out." in page.inner_text("main")
    page.goto(f"{server.url}/choices")
    assert page.url.endswith("/?notice=session_expired")


def test_opt_in_to_location_offers_in_german(server, browser):
    context = browser.new_context(locale="de-DE", viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(server.url + "/")  # language from Accept-Language
    assert page.locator("html").get_attribute("lang") == "de"
    assert "Mit Ihrer Mobilfunknummer anmelden" in page.inner_text("main")
    shot(page, "5-start-de")
    page.fill("#msisdn", "0049 170 1111 0002")  # leading 00
    page.click("button[type=submit]")
    page.wait_for_url("**/verify")
    assert server.messages(CUSTOMER_B)[-1]["text"].startswith("Ihr Code für das Datenschutz-Portal: ")
    page.fill("#code", server.last_code(CUSTOMER_B))
    page.click("button[type=submit]")
    page.wait_for_url("**/choices")
    page.check("#offers-yes")
    page.click("form[action='/choices'] button[type=submit]")
    page.wait_for_url("**/choices?saved=saved")
    assert "Gespeichert." in page.inner_text("main")
    assert page.is_checked("#offers-yes") and page.is_checked("#analytics-yes")
    shot(page, "6-choices-de")
    assert changes(server, CUSTOMER_B) == [(False, True, "portal")]
    # The language switch link leads to the English page and remembers it.
    page.click("nav a")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Your choices for" in page.inner_text("main")
    context.close()


def test_malformed_number_gets_an_error_tied_to_the_field(server, page):
    page.goto(f"{server.url}/?lang=en")
    page.fill("#msisdn", "0170 1234567")  # national format: refused, not guessed
    page.click("button[type=submit]")
    field = page.locator("#msisdn")
    assert field.get_attribute("aria-invalid") == "true"
    assert "msisdn-error" in field.get_attribute("aria-describedby").split()
    assert "international format" in page.inner_text("#msisdn-error")
    assert page.locator(".error-summary a[href='#msisdn']").count() == 1
    shot(page, "7-start-error-en")


def test_markup_typed_into_the_form_is_escaped(server):
    with httpx.Client(base_url=server.url) as client:
        start = client.get("/")
        token = re.search(r'name="csrf_token" value="([^"]+)"', start.text).group(1)
        r = client.post("/code", data={"msisdn": "<script>alert(1)</script>", "csrf_token": token})
    assert r.status_code == 400
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text


def test_wrong_code_is_refused_with_attempts_left(server, page):
    page.goto(f"{server.url}/?lang=en")
    page.fill("#msisdn", CUSTOMER_C)
    page.click("button[type=submit]")
    page.wait_for_url("**/verify")
    right = server.last_code(CUSTOMER_C)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    page.fill("#code", wrong)
    page.click("button[type=submit]")
    assert page.url.endswith("/verify")
    assert f"This code is not correct. Attempts left: {ATTEMPTS - 1}." in page.inner_text("#code-error")
    assert page.locator("#code").get_attribute("aria-invalid") == "true"
    assert "code-error" in page.locator("#code").get_attribute("aria-describedby")
    shot(page, "8-verify-wrong-code-en")
    # The attempt limit: after ATTEMPTS wrong codes even the right one is refused.
    for _ in range(ATTEMPTS - 1):
        page.fill("#code", wrong)
        page.click("button[type=submit]")
    assert "Too many wrong attempts" in page.inner_text("#code-error")
    page.fill("#code", right)
    page.click("button[type=submit]")
    assert "Too many wrong attempts" in page.inner_text("#code-error")
    assert page.url.endswith("/verify")
    shot(page, "9-verify-locked-en")
    with server.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sessions).where(sessions.c.verified)).scalar_one() \
            <= 2  # only the two sign-ins above (A, B)
        code_row = conn.execute(select(codes.c.attempts, codes.c.used_at).order_by(codes.c.id.desc())).first()
    assert code_row == (ATTEMPTS, None)


def test_expired_code_is_refused(server, page):
    page.goto(f"{server.url}/?lang=en")
    page.fill("#msisdn", CUSTOMER_D)
    page.click("button[type=submit]")
    page.wait_for_url("**/verify")
    code = server.last_code(CUSTOMER_D)
    server.clock.advance(TTL + 1)
    try:
        page.fill("#code", code)
        page.click("button[type=submit]")
        assert "This code has expired" in page.inner_text("#code-error")
        shot(page, "10-verify-expired-en")
    finally:
        server.clock.advance(-(TTL + 1))
    page.goto(f"{server.url}/choices")
    assert page.url.endswith("/?notice=session_expired")  # not signed in


def _verify_page_html(page, server, typed: str) -> tuple[int, str]:
    page.goto(f"{server.url}/?lang=en")
    page.fill("#msisdn", typed)
    with page.expect_response(lambda r: r.url.endswith("/code")) as resp:
        page.click("button[type=submit]")
    page.wait_for_url("**/verify")
    html = re.sub(r'name="csrf_token" value="[^"]+"', "", page.content())
    return resp.value.status, html


def test_same_response_for_customers_and_strangers(server, page, browser):
    before_stranger = len(server.messages(STRANGER))
    status_c, html_c = _verify_page_html(page, server, CUSTOMER_E)
    other = browser.new_context(locale="en-GB").new_page()
    status_s, html_s = _verify_page_html(other, server, STRANGER)
    assert status_c == status_s == 303
    # The same page, word for word, apart from the number the visitor typed.
    assert html_c.replace("+" + CUSTOMER_E, "NUMBER") == html_s.replace("+" + STRANGER, "NUMBER")
    # Only the customer got a code (the CRM holds the number as '+49...': matched too).
    assert len(server.messages(CUSTOMER_E)) == 1 and len(server.messages(STRANGER)) == before_stranger == 0
    # And the limit per number treats both alike.
    for number in (CUSTOMER_E, STRANGER):
        with httpx.Client(base_url=server.url) as client:
            for _ in range(PER_NUMBER - 1):
                token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
                assert client.post("/code", data={"msisdn": number, "csrf_token": token}).status_code == 303
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
            refused = client.post("/code", data={"msisdn": number, "csrf_token": token})
        assert refused.status_code == 429 and "Too many codes have been requested" in refused.text
    other.context.close()


def test_forged_posts_without_csrf_token_are_refused(server):
    with server.engine.connect() as conn:
        n_codes = conn.execute(select(func.count()).select_from(codes)).scalar_one()
        n_changes = conn.execute(select(func.count()).select_from(consent_changes)).scalar_one()
    with httpx.Client(base_url=server.url) as client:
        client.get("/")  # a real session cookie, as a victim's browser would send along
        for path, data in (("/code", {"msisdn": CUSTOMER_A}), ("/verify", {"code": "123456"}),
                           ("/choices", {"analytics": "yes", "offers": "yes"}), ("/logout", {})):
            r = client.post(path, data=data)
            assert r.status_code == 403, path
            assert "This form cannot be accepted" in r.text
            assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path
    # Without any session cookie too.
    assert httpx.post(f"{server.url}/code", data={"msisdn": CUSTOMER_A, "csrf_token": "x"}).status_code == 403
    with server.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(codes)).scalar_one() == n_codes
        assert conn.execute(select(func.count()).select_from(consent_changes)).scalar_one() == n_changes


def test_a_form_on_another_site_cannot_post_to_the_portal(server, page):
    """A cross-site form (as an attacker's page would hold) gets the 403 page, nothing happens."""
    page.goto(f"{server.url}/?lang=en")  # the victim has a session with the portal
    page.set_content(f'''<form method="post" action="{server.url}/choices">
        <input name="analytics" value="no"><input name="offers" value="yes"><button>go</button></form>''')
    with page.expect_response(lambda r: r.url.endswith("/choices")) as resp:
        page.click("button")
    assert resp.value.status == 403
    page.wait_for_load_state()
    assert "This form cannot be accepted" in page.inner_text("main")
    shot(page, "12-forbidden-en")


def test_codes_per_client_are_limited(tmp_path):
    conf = portal_conf(tmp_path, customer_check="any", max_codes_per_client_per_hour=2)
    with PortalServer(conf) as srv, httpx.Client(base_url=srv.url) as client:
        statuses = []
        for number in ("4917022220001", "4917022220002", "4917022220003"):
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
            statuses.append(client.post("/code", data={"msisdn": number, "csrf_token": token}).status_code)
        assert statuses == [303, 303, 429]
        assert [m["to"] for m in srv.messages()] == ["4917022220001", "4917022220002"]


def test_secure_cookies_when_configured(tmp_path):
    with PortalServer(portal_conf(tmp_path, secure_cookies=True)) as srv:
        cookie = httpx.get(f"{srv.url}/").headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_cookies_and_headers(server):
    r = httpx.get(f"{server.url}/")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # portal.secure_cookies is off for this local http server
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_portal_without_its_key_exits_2_naming_the_variable(tmp_path):
    conf = portal_conf(tmp_path, key_env="MI_PORTAL_KEY_TEST_UNSET")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "portal", "--conf", str(conf)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: missing secret: environment variable "
                                                          "MI_PORTAL_KEY_TEST_UNSET")
