"""The portal's web application: server-rendered pages, no JavaScript needed.

Flow: ``/`` (number) -> POST ``/code`` -> ``/verify`` (one-time code) -> POST ``/verify``
-> ``/choices`` (see and change) -> POST ``/choices``; POST ``/logout``.

Security in short: every POST carries the session's CSRF token (else 403); sessions are
random cookie values (HttpOnly, SameSite=Strict, Secure unless configured off) stored
only as keyed hashes and rotated at sign-in; codes are random, short-lived, single-use,
stored as salted keyed hashes, with limits on attempts per code and on codes per number
and per client each hour; the page after asking for a code is the same whether or not
the number is a customer's (codes are created for every well-formed number and only
*sent* to customers); logs show keyed hashes only; Jinja autoescapes everything.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import Engine, and_, delete, func, insert, select, update

from mobility.config import Config
from mobility.secrets import Secret
from portal import i18n, lake
from portal.msisdn import display_msisdn, normalize_msisdn
from portal.plugins import CodeSender, CustomerCheck, load_customer_check, load_sender
from portal.security import CODE_DIGITS, PortalCrypto, new_code, new_token
from portal.store import DEFAULT_PREFERENCE, Preference, append_change, codes, latest_change, make_engine, sessions

log = logging.getLogger("portal")

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mi_portal_session"
LANG_COOKIE = "mi_portal_lang"
NOTICES = ("signed_out", "session_expired")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RATE_WINDOW = dt.timedelta(hours=1)


def utcnow() -> dt.datetime:
    """Naive UTC now: how the portal's database keeps time."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def short(hash_hex: str) -> str:
    """The first 16 hex digits of a keyed hash: enough to follow one number through the logs."""
    return hash_hex[:16]


def create_app(cfg: Config, key: Secret, *, engine: Engine | None = None, clock: Callable[[], dt.datetime] = utcnow,
               sender: CodeSender | None = None, customers: CustomerCheck | None = None) -> FastAPI:
    """Build the portal for ``cfg`` (its ``portal`` section must be present).

    ``clock``, ``sender`` and ``customers`` can be injected (tests); by default they are
    the wall clock and the configured plug-ins.
    """
    pc = cfg.portal
    if pc is None:
        raise ValueError("config section 'portal' is missing")
    engine = engine or make_engine(pc.database_url)
    sender = sender or load_sender(cfg)
    customers = customers or load_customer_check(cfg)
    crypto = PortalCrypto(key)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    ttl_minutes = max(1, round(pc.code_ttl_seconds / 60))

    app = FastAPI(title="Privacy portal", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # --- helpers -----------------------------------------------------------------------

    def language(request: Request) -> str:
        return i18n.choose_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                                    request.headers.get("accept-language"))

    def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            secure=pc.secure_cookies, samesite="strict")

    def render(request: Request, template: str, page: str, *, status: int = 200,
               session: dict | None = None, token: str | None = None, **ctx: Any) -> HTMLResponse:
        lang = language(request)

        def t(key: str, **params: object) -> str:
            return i18n.translate(lang, key, **params)

        html = env.get_template(template).render(
            t=t, lang=lang, page=page, other=i18n.translate(lang, "other_language_code"),
            csrf=session["csrf"] if session else "", **ctx)
        response = HTMLResponse(html, status_code=status)
        if request.query_params.get("lang") in i18n.LANGUAGES:
            set_cookie(response, LANG_COOKIE, lang, 365 * 24 * 3600)
        if token:
            set_cookie(response, SESSION_COOKIE, token, pc.session_ttl_seconds)
        return response

    def redirect(path: str, token: str | None = None) -> RedirectResponse:
        response = RedirectResponse(path, status_code=303)
        if token:
            set_cookie(response, SESSION_COOKIE, token, pc.session_ttl_seconds)
        return response

    def load_session(request: Request) -> tuple[str, dict] | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        with engine.connect() as conn:
            live = and_(sessions.c.token_hash == crypto.token_hash(token), sessions.c.expires_at > clock())
            row = conn.execute(select(sessions).where(live)).mappings().first()
        return (token, dict(row)) if row else None

    def new_session() -> tuple[str, dict]:
        now = clock()
        token = new_token()
        row = {"token_hash": crypto.token_hash(token), "csrf": new_token(), "sealed_msisdn": None,
               "number_hash": None, "code_id": None, "verified": False, "created_at": now,
               "expires_at": now + dt.timedelta(seconds=pc.session_ttl_seconds)}
        with engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
            conn.execute(insert(sessions).values(**row))
        return token, row

    def session_or_new(request: Request) -> tuple[str, dict, bool]:
        found = load_session(request)
        if found:
            return found[0], found[1], False
        token, row = new_session()
        return token, row, True

    def csrf_ok(request: Request, submitted: str) -> tuple[str, dict] | None:
        found = load_session(request)
        if found and submitted and hmac.compare_digest(found[1]["csrf"].encode(), submitted.encode()):
            return found
        return None

    def forbidden(request: Request) -> HTMLResponse:
        log.warning("portal: POST %s refused (missing or wrong CSRF token or no session)", request.url.path)
        return render(request, "forbidden.html", "/", status=403)

    def session_number(token: str, row: dict) -> str:
        return crypto.unseal(token, row["sealed_msisdn"])

    def current_preference(msisdn: str) -> Preference:
        candidates = [p for p in (latest_change(engine, msisdn), lake.latest_lake_preference(cfg.lake.raw, msisdn))
                      if p is not None]
        return max(candidates, key=lambda p: p.updated_at) if candidates else DEFAULT_PREFERENCE

    # --- pages -------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def start(request: Request) -> Response:
        token, row, is_new = session_or_new(request)
        if row["verified"]:
            return redirect("/choices")
        notice = request.query_params.get("notice")
        return render(request, "start.html", "/", session=row, token=token if is_new else None,
                      notice=notice if notice in NOTICES else None, msisdn_value="", errors={})

    @app.post("/code", response_class=HTMLResponse)
    def request_code(request: Request, msisdn: str = Form(""), csrf_token: str = Form("")) -> Response:
        found = csrf_ok(request, csrf_token)
        if not found:
            return forbidden(request)
        token, row = found
        number = normalize_msisdn(msisdn)
        if number is None:
            return render(request, "start.html", "/", status=400, session=row, msisdn_value=msisdn,
                          errors={"msisdn": ("err_msisdn", {})})
        now = clock()
        number_hash = crypto.number_hash(number)
        client_hash = crypto.client_hash(request.client.host if request.client else "unknown")
        since = now - RATE_WINDOW
        with engine.connect() as conn:
            per_number = conn.execute(select(func.count()).select_from(codes).where(
                and_(codes.c.number_hash == number_hash, codes.c.created_at > since))).scalar_one()
            per_client = conn.execute(select(func.count()).select_from(codes).where(
                and_(codes.c.client_hash == client_hash, codes.c.created_at > since))).scalar_one()
        if per_number >= pc.max_codes_per_number_per_hour or per_client >= pc.max_codes_per_client_per_hour:
            log.warning("portal: code refused by rate limit number=%s client=%s", short(number_hash),
                        short(client_hash))
            return render(request, "start.html", "/", status=429, session=row, msisdn_value=msisdn,
                          errors={"form": ("err_rate", {})})
        # A code row for every well-formed number, sent only to customers: the page, the
        # limits and the timing a visitor sees are the same either way.
        code, salt = new_code(), secrets.token_hex(16)
        is_customer = customers.is_customer(number)
        sent = False
        if is_customer:
            text = i18n.translate(language(request), "sms_text", code=code, minutes=ttl_minutes)
            try:
                sender.send(number, text)
                sent = True
            except Exception:  # the gateway failed; the visitor still sees the neutral page
                log.exception("portal: sending a code failed number=%s", short(number_hash))
        with engine.begin() as conn:
            code_id = conn.execute(insert(codes).values(
                number_hash=number_hash, client_hash=client_hash, salt=salt, code_hash=crypto.code_hash(salt, code),
                created_at=now, expires_at=now + dt.timedelta(seconds=pc.code_ttl_seconds), attempts=0,
                used_at=None, sent=sent)).inserted_primary_key[0]
            conn.execute(update(sessions).where(sessions.c.token_hash == row["token_hash"]).values(
                sealed_msisdn=crypto.seal(token, number), number_hash=number_hash, code_id=code_id, verified=False))
        log.info("portal: code requested number=%s client=%s sent=%s", short(number_hash), short(client_hash), sent)
        return redirect("/verify")

    @app.get("/verify", response_class=HTMLResponse)
    def verify_page(request: Request) -> Response:
        found = load_session(request)
        if not found or not found[1]["code_id"]:
            return redirect("/?notice=session_expired")
        token, row = found
        return render(request, "verify.html", "/verify", session=row, errors={}, **verify_ctx(token, row))

    def verify_ctx(token: str, row: dict) -> dict:
        return {"number": display_msisdn(session_number(token, row)), "minutes": ttl_minutes,
                "digits": CODE_DIGITS}

    @app.post("/verify", response_class=HTMLResponse)
    def verify(request: Request, code: str = Form(""), csrf_token: str = Form("")) -> Response:
        found = csrf_ok(request, csrf_token)
        if not found:
            return forbidden(request)
        token, row = found
        if not row["code_id"]:
            return redirect("/?notice=session_expired")
        now = clock()
        with engine.connect() as conn:
            rec = conn.execute(select(codes).where(codes.c.id == row["code_id"])).mappings().first()

        def error(key: str, status: int = 400, **params: object) -> HTMLResponse:
            return render(request, "verify.html", "/verify", status=status, session=row,
                          errors={"code": (key, params)}, **verify_ctx(token, row))

        if rec is None or rec["used_at"] is not None:
            return redirect("/?notice=session_expired")
        if now >= rec["expires_at"]:
            return error("err_code_expired")
        if rec["attempts"] >= pc.max_attempts_per_code:
            return error("err_code_locked", status=429)
        entered = "".join(code.split())
        if not (len(entered) == CODE_DIGITS and entered.isdigit()):
            return error("err_code_format")
        right = rec["sent"] and hmac.compare_digest(crypto.code_hash(rec["salt"], entered), rec["code_hash"])
        if not right:
            with engine.begin() as conn:
                conn.execute(update(codes).where(codes.c.id == rec["id"]).values(attempts=codes.c.attempts + 1))
                attempts = conn.execute(select(codes.c.attempts).where(codes.c.id == rec["id"])).scalar_one()
            log.info("portal: wrong code number=%s attempt=%d", short(rec["number_hash"]), attempts)
            left = pc.max_attempts_per_code - attempts
            return error("err_code_locked", status=429) if left <= 0 else error("err_code_wrong", n=left)
        with engine.begin() as conn:
            used = conn.execute(update(codes).where(and_(codes.c.id == rec["id"], codes.c.used_at.is_(None)))
                                .values(used_at=now)).rowcount
            if used != 1:  # a concurrent request used it first: single use
                return redirect("/?notice=session_expired")
            conn.execute(delete(sessions).where(sessions.c.token_hash == row["token_hash"]))
        # A new session at sign-in (no session fixation), carrying the number sealed anew.
        number = session_number(token, row)
        new_tok = new_token()
        new_session_values = {"sealed_msisdn": crypto.seal(new_tok, number), "number_hash": rec["number_hash"],
                              "verified": True}
        _insert_session(new_tok, new_session_values)
        log.info("portal: signed in number=%s", short(rec["number_hash"]))
        return redirect("/choices", token=new_tok)

    def _insert_session(token: str, values: dict) -> None:
        now = clock()
        row = {"token_hash": crypto.token_hash(token), "csrf": new_token(), "code_id": None, "created_at": now,
               "expires_at": now + dt.timedelta(seconds=pc.session_ttl_seconds), **values}
        with engine.begin() as conn:
            conn.execute(insert(sessions).values(**row))

    def verified_session(request: Request, found: tuple[str, dict] | None = None) -> tuple[str, dict] | None:
        found = found or load_session(request)
        return found if found and found[1]["verified"] else None

    def choices_response(request: Request, token: str, row: dict, *, status: int = 200, errors: dict | None = None,
                         saved: str | None = None, selected: dict | None = None) -> HTMLResponse:
        number = session_number(token, row)
        pref = current_preference(number)
        chosen = selected or {"analytics": "no" if pref.analytics_opt_out else "yes",
                              "offers": "yes" if pref.location_offers_opt_in else "no"}
        fmt = "%d.%m.%Y, %H:%M" if language(request) == "de" else "%Y-%m-%d %H:%M"
        when = pref.updated_at.strftime(fmt) if pref.updated_at else None
        return render(request, "choices.html", "/choices", status=status, session=row,
                      number=display_msisdn(number), chosen=chosen, when=when, errors=errors or {},
                      saved=saved, k_min=cfg.privacy.k_min)

    @app.get("/choices", response_class=HTMLResponse)
    def choices_page(request: Request) -> Response:
        found = verified_session(request)
        if not found:
            return redirect("/?notice=session_expired")
        saved = request.query_params.get("saved")
        return choices_response(request, *found, saved=saved if saved in ("saved", "unchanged") else None)

    @app.post("/choices", response_class=HTMLResponse)
    def save_choices(request: Request, analytics: str = Form(""), offers: str = Form(""),
                     csrf_token: str = Form("")) -> Response:
        found = csrf_ok(request, csrf_token)
        if not found:
            return forbidden(request)
        if not verified_session(request, found):
            return redirect("/?notice=session_expired")
        token, row = found
        errors = {name: ("err_choice", {}) for name, value in (("analytics", analytics), ("offers", offers))
                  if value not in ("yes", "no")}
        if errors:
            return choices_response(request, token, row, status=400, errors=errors,
                                    selected={"analytics": analytics, "offers": offers})
        number = session_number(token, row)
        opt_out, opt_in = analytics == "no", offers == "yes"
        pref = current_preference(number)
        if pref.updated_at is not None and (pref.analytics_opt_out, pref.location_offers_opt_in) == (opt_out, opt_in):
            return redirect("/choices?saved=unchanged")
        append_change(engine, number, analytics_opt_out=opt_out, location_offers_opt_in=opt_in, now=clock())
        log.info("portal: change recorded number=%s analytics_opt_out=%s location_offers_opt_in=%s",
                 short(row["number_hash"]), opt_out, opt_in)
        return redirect("/choices?saved=saved")

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        found = csrf_ok(request, csrf_token)
        if not found:
            return forbidden(request)
        with engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == found[1]["token_hash"]))
        response = redirect("/?notice=signed_out")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    app.state.engine = engine
    return app
