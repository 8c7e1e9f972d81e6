"""The ground floor every service stands on: settings, the one exception tree, client factories,
metrics, logging, network helpers, topic administration and request signing (the HMAC schemes).
It imports ``schemas`` and no service; the ``warden`` CLI on top imports everything."""
