"""Jinja2 templates of the package, autoescaped, with the dashboard's number filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2

from relay.ui.session import Session
from relay.ui.web import UiResponse


def money(value: float | None) -> str:
    """``$1,234.56``; small amounts keep their cents' fractions."""
    if value is None:
        return "-"
    if 0 < abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def number(value: float | None) -> str:
    """``12,345``."""
    return "-" if value is None else f"{value:,.0f}"


def when(value: datetime | float | None) -> str:
    """``2026-12-03 14:05:09`` in UTC."""
    if value is None:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    """``123 ms``."""
    return "-" if value is None else f"{value:,.0f} ms"


class Renderer:
    """Renders a page or an error page into an answer."""

    def __init__(self, *, sso: bool) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("relay.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(money=money, number=number, when=when, ms=ms)
        self.env.globals["sso"] = sso

    def page(
        self, template: str, status: int = 200, *, session: Session | None, csrf: str, **context: Any
    ) -> UiResponse:
        """A page; never cached (it carries the session's CSRF token and private data)."""
        html = self.env.get_template(template).render(
            session=session, actor=session.actor if session else None, csrf=csrf, **context
        )
        return UiResponse(status, html.encode(), headers=[("cache-control", "no-store")])

    def error(
        self,
        status: int,
        message: str,
        *,
        session: Session | None = None,
        csrf: str = "",
        signed_out: bool = False,
    ) -> UiResponse:
        """An error page that says what went wrong."""
        return self.page(
            "error.html", status, session=session, csrf=csrf, message=message,
            code=status, signed_out=signed_out, nav="",
        )  # fmt: skip
