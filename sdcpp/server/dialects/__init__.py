"""Foreign API dialects: each a package with schemas (request models ending in ``to_spec()``),
a router (HTTP only) and a renderer of the one error table in its own envelope."""
