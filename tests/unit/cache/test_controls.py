"""``Cache-Control`` and ``x-relay-cache-ttl`` (``relay.cache.controls``)."""

from __future__ import annotations

import pytest

from relay.cache.controls import controls
from relay.errors import InvalidRequest


def test_controls() -> None:
    assert controls({}, 60) == (True, True, None, 60)
    assert controls({"cache-control": "no-cache"}, 60)[:2] == (False, True)
    assert controls({"cache-control": "No-Store"}, 60)[:2] == (True, False)
    assert controls({"cache-control": "max-age=30"}, 60)[2] == 30
    assert controls({"cache-control": "max-age=soon"}, 60)[2] == 0
    assert controls({"x-relay-cache-ttl": "5"}, 60)[3] == 5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(InvalidRequest, match="x-relay-cache-ttl"):
            controls({"x-relay-cache-ttl": bad}, 60)
