"""Who may see what, and the record of every look: the access layer every door passes.

A front end (the dashboard after an OIDC login, the CLI as the OS user, the HTTP API with
a bearer token) maps its own identity onto a :class:`Principal` and then reads patient
data only through :mod:`nasindex.access.guard`. Each of those functions checks the role,
applies the NAS scope in SQL, and writes the audit record (:mod:`.audit`) before it
returns anything: if the record cannot be written, nothing is returned (fail closed).
"""

from nasindex.access.principal import ADMIN, CLINICIAN, Principal

__all__ = ["ADMIN", "CLINICIAN", "Principal"]
