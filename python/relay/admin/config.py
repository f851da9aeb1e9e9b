"""``GET /admin/config``: the configuration this worker serves, with every secret redacted
(:mod:`relay.config.redact`), and its version (a hash of the validated configuration and when
it was applied). For admins only: the master key, or an admin user's key, as ``DELETE
/admin/cache``. Every other ``/admin`` request goes to the admin API it wraps.

The body is made once per configuration: a hot reload builds a new one of these.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relay.admin.front import AdminApi, FrontRoute, Response, admit_admin, allow_methods, error_body
from relay.config.model import Config
from relay.config.redact import redacted
from relay.config.reload import RESTART_NEEDED
from relay.config.version import ConfigVersion
from relay.errors import GatewayError, InvalidRequest

PATH = "/admin/config"
_JSON = ("content-type", "application/json")


class ConfigAdmin(FrontRoute):
    """The admin API with ``GET /admin/config`` in front of it."""

    PATH = PATH

    def __init__(
        self, inner: AdminApi, config: Config, version: ConfigVersion, admin_key: str | None
    ) -> None:
        super().__init__(inner, admin_key)
        self.body = msgspec.json.encode(
            {
                "version": version.as_dict(),
                "source": config.source,
                # What a reload does not change (relay.config.reload): a restart applies it.
                "restart_needed": sorted((*RESTART_NEEDED, "auth.mode")),
                "config": redacted(config),
            }
        )

    async def answer(self, method: str, query: str, headers: Any) -> Response:
        """Show the configuration."""
        try:
            allow_methods(method, PATH, ("GET", "HEAD"))
            if query:
                raise InvalidRequest(f"{PATH} takes no query parameters")
            await admit_admin(
                headers, self.admin_key, self.inner, "only admins can read the configuration"
            )
        except GatewayError as err:
            return err.status, [_JSON, *err.headers], error_body(err)
        return 200, [_JSON, ("cache-control", "no-store")], b"" if method == "HEAD" else self.body
