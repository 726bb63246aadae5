"""Identifier resolution: Handle-style identifiers, registry, nodes and resolvers.

``syntax`` (parse/normalise), ``values`` (typed values), ``templates`` (per-prefix
metadata templates), ``registry``/``bulk``/``prefixes`` (storage, import, filing),
``http``/``asgi``/``server`` (the Handle.Net-compatible API and its lean HTTP server),
``nodes``/``node_routes`` (root, secondary, enterprise and recursive roles), ``resolver``/
``cache`` (recursive resolution with TTL), ``rescache`` (the record cache shared in Redis),
``schemes`` (GS1 Digital Link, OID, Ecode) and
``api`` (``mint``/``resolve`` for other rooms).
"""
