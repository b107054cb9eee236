"""Running nasindex on Prefect: the names of its flows and deployments (``catalog``),
``prefect.yaml`` from the config (``deployments``), starting deployment runs (``runs``),
and the ``make run`` supervisor of the local stack (``supervisor``, ``processes``).

The core (engine, index, search, plugins) never imports this room; front ends and the
flows do."""
