"""The admin API's OpenAPI 3.1 document, generated from the route table and the Structs."""

from __future__ import annotations

from typing import Any

import msgspec

from relay.admin.models import ErrorBody
from relay.admin.routes import ROUTES

_REF = "#/components/schemas/{name}"


def openapi_document() -> dict[str, Any]:
    """The document served at ``/admin/openapi.json``."""
    types: list[Any] = [ErrorBody]
    for route in ROUTES:
        types += [t for t in (route.body, route.response) if t is not None]
    unique = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(unique, ref_template=_REF)
    ref_of = dict(zip(unique, refs, strict=True))
    error = {"content": {"application/json": {"schema": ref_of[ErrorBody]}}}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {
            "operationId": route.handler,
            "summary": route.summary,
            "security": [{"bearer": []}],
            "responses": {
                str(route.status): {
                    "description": "success",
                    "content": {
                        "application/json": {
                            "schema": ref_of[route.response] if route.response else {}
                        }
                    },
                },
                "400": {"description": "bad input; the message names the field", **error},
                "401": {"description": "missing or invalid key", **error},
                "403": {"description": "the key may not do this", **error},
                "404": {"description": "no such object in your organization", **error},
            },
        }
        parameters = [
            {"name": name, "in": "query", "required": False, "description": text,
             "schema": {"type": "string"}}
            for name, text in route.query
        ]  # fmt: skip
        if "{id}" in route.path:
            parameters.insert(
                0, {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        if parameters:
            op["parameters"] = parameters
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_of[route.body]}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Relay admin API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the master key (RELAY_ADMIN_KEY) or a user's gateway key",
                }
            },
        },
    }
