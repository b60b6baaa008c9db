"""``python -m oppie_pulumi.provider <engine-address>``: the plugin process the engine starts.

``python -m oppie_pulumi.provider --schema`` prints the package schema (what ``pulumi package get-schema`` shows).
"""

from __future__ import annotations

import sys

from .schema import schema_json
from .server import main

if __name__ == "__main__":
    if sys.argv[1:] == ["--schema"]:
        print(schema_json())
    else:
        main()
