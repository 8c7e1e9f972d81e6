"""Dev tools beside the ``warden`` CLI: the chat generator, local servers speaking the platforms'
REST protocols, the benchmarks' and tests' service processes.

Nothing here runs in production and no service imports it; it imports the services' floors
(``core``, ``schemas``) at most.
"""
