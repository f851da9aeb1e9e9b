"""The exact response cache (issue 25): identical requests of one tenant answered from memory
or Redis without a provider call, JSON and streams alike.

``policy`` (what is cached, the key), ``stage`` (hit or miss, and the writer after the last
byte), ``record`` (the recorders on the way out), ``replay``/``convert`` (a hit's answer),
``memory``/``redis`` (backends), ``board`` (purges across workers), ``admin``
(``DELETE /admin/cache``).
"""
