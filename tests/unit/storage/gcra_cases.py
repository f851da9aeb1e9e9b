"""One table of GCRA steps that every implementation must decide bit for bit alike: the native
``gcra`` (rust/src/gcra.rs), the Lua script in Redis, and any store built on either.

Each case is ``(tat, now, emission_interval, burst, cost)``; ``tat`` None is an empty cell
(its TAT is ``now``). They cover the edges of rust/src/gcra.rs's own tests: a burst at one
instant, the last burst slot under float rounding, fractional and zero costs, a cost above the
burst, a partial remaining on denial, an old TAT, and large and tiny magnitudes.
"""

from __future__ import annotations

Case = tuple[float | None, float, float, float, float]

CASES: list[Case] = [
    # 1 per second, burst 3: three pass at one instant, the fourth waits 1 s.
    (None, 100.0, 1.0, 3.0, 1.0),
    (101.0, 100.0, 1.0, 3.0, 1.0),
    (102.0, 100.0, 1.0, 3.0, 1.0),
    (103.0, 100.0, 1.0, 3.0, 1.0),
    (103.0, 101.0, 1.0, 3.0, 1.0),
    (104.0, 110.0, 1.0, 3.0, 1.0),
    # the last slot of a burst is not lost to float rounding
    (0.24, 0.0, 0.06, 5.0, 1.0),
    (1.7e9 + 0.9, 1.7e9, 0.1, 10.0, 1.0),
    (1.7e9 + 1.0, 1.7e9, 0.1, 10.0, 1.0),
    (12345.678 + 2.0, 12345.678, 1.0 / 3.0, 7.0, 1.0),
    (12345.678 + 7.0 / 3.0, 12345.678, 1.0 / 3.0, 7.0, 1.0),
    # fractional and zero costs (a zero cost is a peek)
    (None, 10.0, 1.0, 2.0, 0.5),
    (10.5, 10.0, 1.0, 2.0, 0.0),
    (10.5, 10.0, 1.0, 2.0, 1.5),
    (12.0, 10.0, 1.0, 2.0, 0.5),
    # a cost above the burst never passes (retry_after infinite); at the burst it does
    (None, 10.0, 1.0, 3.0, 4.0),
    (None, 10.0, 1.0, 3.0, 3.0),
    (12.0, 10.0, 1.0, 3.0, 4.0),
    # denied with part of the burst left
    (12.0, 10.0, 1.0, 5.0, 4.0),
    # an old TAT counts as now
    (-1e9, 5.0, 2.0, 1.0, 1.0),
    # 0.2 per second, burst 1 (the seed's example)
    (None, 1000.0, 5.0, 1.0, 1.0),
    (1005.0, 1000.0, 5.0, 1.0, 1.0),
    (1005.0, 1004.999, 5.0, 1.0, 1.0),
    (1005.0, 1005.0, 5.0, 1.0, 1.0),
    # tokens per minute: 100k per 60 s, a reservation of 4,000 then one of 97,000
    (None, 3600.0, 60.0 / 100_000, 100_000.0, 4000.0),
    (3602.4, 3600.0, 60.0 / 100_000, 100_000.0, 97_000.0),
    # large and tiny magnitudes
    (None, 0.0, 1e-6, 1e6, 1.0),
    (1e6, 1e6 - 1e-7, 1e-6, 1.0, 1.0),
    (None, 1e9, 86400.0, 1.0, 1.0),
    (3.3e7 + 0.25, 3.3e7, 0.001, 250.0, 1.0),
    (3.3e7 + 0.2500001, 3.3e7, 0.001, 250.0, 1.0),
]
