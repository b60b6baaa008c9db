"""``pulumi-resource-oppie``: the phone-agent API as a real Pulumi provider plugin, for every Pulumi language.

The dynamic ``oppie_pulumi.PhoneAgent`` works from Python programs only; this plugin serves the same resource as
``oppie:index:PhoneAgent`` to the engine over gRPC, with a schema (so YAML, TypeScript, Go, C# and Java programs
can use it through SDKs generated from it), Pulumi's import, per-property diffs, ``customTimeouts`` and progress
lines in the CLI. It shares the client, the models and the errors with the dynamic resource.

Run it as the engine does: ``python -m oppie_pulumi.provider <engine-address>`` (``plugin/pulumi-resource-oppie``
is the launcher Pulumi finds). docs/plugin.md says how to install and use it.

Modules: ``schema`` (the package schema, from ``_models``), ``agents`` (the resource's operations), ``client``
(the API client reporting its waits), ``engine`` (log lines and the operation each thread serves), ``server``
(the gRPC service and ``main``).
"""

from .schema import PACKAGE, PHONE_AGENT, VERSION, schema

__all__ = ["PACKAGE", "PHONE_AGENT", "VERSION", "schema"]
