"""Request handling per route family: the API routes (one per dialect), pass-through, the
routes the gateway answers itself, and /admin. ``app.py`` composes them and routes to them."""
