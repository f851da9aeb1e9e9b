"""The dashboard at ``/ui``: server-rendered pages over the admin API's store and access
rules, sign-in with a key or OIDC, signed session cookies."""
