"""A local stand-in of the phone-agent API, with fault injection, for tests, benchmarks and demos.

In-process::

    from oppie_pulumi.sandbox import SandboxConfig, serve

    with serve(SandboxConfig(db_path=":memory:")) as server:
        server.set_faults(fail_next=1)  # the next API request answers 503
        ...  # point a client at server.url with server.token
        assert server.agents() == []  # what exists server-side, bypassing HTTP

From a shell: ``python -m oppie_pulumi.sandbox --port 8787`` (or ``oppie-sandbox``).
"""

from ._app import create_app
from ._faults import Faults
from ._server import SandboxServer, serve
from ._state import SandboxConfig

__all__ = ["Faults", "SandboxConfig", "SandboxServer", "create_app", "serve"]
