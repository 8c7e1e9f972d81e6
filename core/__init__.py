"""The ground floor every service stands on: settings, the one exception tree, client factories,
metrics, logging, network helpers and topic administration. It imports ``schemas`` and no
service; the ``warden`` CLI on top imports everything."""
