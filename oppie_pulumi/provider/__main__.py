"""``python -m oppie_pulumi.provider <engine-address>``: the plugin process the engine starts.

``python -m oppie_pulumi.provider --schema [--plugin-download-url URL]`` prints the package schema (what ``pulumi
package get-schema`` shows; with the URL, the schema ``make dist`` generates the SDKs from).
"""

from __future__ import annotations

import sys


def _print_schema(args: list[str]) -> None:
    from .schema import schema_json

    if args and (args[0] != "--plugin-download-url" or len(args) != 2):
        sys.exit("usage: python -m oppie_pulumi.provider --schema [--plugin-download-url URL]")
    print(schema_json(args[1] if args else None))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--schema"]:
        _print_schema(sys.argv[2:])
    else:
        # Only what serving needs: the schema (pydantic) loads when the engine asks for it.
        from .server import main

        main()
