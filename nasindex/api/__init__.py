"""The HTTP API (``nasindex serve``): a front end for programs, beside the dashboard and
the CLI. Routes take their user from :data:`nasindex.api.caller.CallerDep` and read only
through the access layer; :mod:`nasindex.api.problems` turns errors into HTTP answers.
See docs/api.md."""
