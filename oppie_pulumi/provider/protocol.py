"""Pulumi's provider protocol as the plugin speaks it: the generated gRPC modules and the wire's constants.

The generated modules (``provider_pb2``, ``engine_pb2`` and their gRPC stubs) ship in the Pulumi SDK as
``pulumi.runtime.proto``. Importing them by that name first runs ``pulumi/__init__``, which imports the whole SDK
(the runtime, the automation API, OpenTelemetry: about 0.3 s, more than the plugin's own code), and the plugin uses
none of it. The engine starts the plugin for every command that uses it and waits for its port before the first
call, so that time would be on the path of every ``preview``, ``up`` and ``refresh``.

So, in a process that has not imported the SDK (the plugin's), the same files are loaded as a package of this
module's own whose path is the SDK's proto folder: the same code, descriptors and message classes, none of the SDK.
protobuf keeps one message class per descriptor, so a process that imports the SDK as well (a test) sees one set of
classes. In a process that has already imported the SDK, its modules are used as they are.

``UNKNOWN`` and the secret wrapper are the protocol's constants (Pulumi's ``sdk/go/common/resource/properties.go``;
``pulumi.runtime.rpc`` spells them the same, and a test pins that).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

__all__ = [
    "GRPC_OPTIONS",
    "UNKNOWN",
    "engine_pb2",
    "engine_pb2_grpc",
    "plugin_pb2",
    "provider_pb2",
    "provider_pb2_grpc",
    "unwrap_secret",
]

# A value the engine does not know yet (a preview's output of another resource).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# A secret travels as {SIG_KEY: SECRET_SIG, "value": ...} where the receiver accepts no secrets (config).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# The SDK's own server settings (pulumi.runtime._grpc_settings): messages up to 400 MB, and a request may wait
# half an hour for a free worker before gRPC gives up on it.
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 400 * 1024 * 1024),
    ("grpc.server_max_unrequested_time_in_server", 30 * 60),
]

_SDK_PACKAGE = "pulumi.runtime.proto"
_OWN_PACKAGE = f"{__name__}._generated"


def unwrap_secret(value: Any) -> Any:
    """The value inside a secret wrapper, or ``value`` itself when it is not one."""
    if isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG:
        return value["value"]
    return value


def _package() -> str:
    """The package to import the generated modules from: the SDK's when it is loaded, else ours over its files."""
    if "pulumi" in sys.modules:
        return _SDK_PACKAGE
    spec = importlib.util.find_spec("pulumi")  # finds the SDK without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the oppie plugin needs the Pulumi SDK's protocol modules: pip install pulumi")
    package = types.ModuleType(_OWN_PACKAGE, "Pulumi's generated protocol modules, loaded without the SDK")
    package.__path__ = [f"{location}/runtime/proto" for location in spec.submodule_search_locations]
    sys.modules[_OWN_PACKAGE] = package
    return _OWN_PACKAGE


def _load(package: str, name: str) -> types.ModuleType:
    return importlib.import_module(f"{package}.{name}")


if TYPE_CHECKING:
    # The same modules as the type checker sees them: the SDK's stubs (.pyi) beside them, so that the servicer the
    # provider subclasses and the messages it builds are typed, whichever package they are loaded from at run time.
    from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc
else:
    _PACKAGE = _package()
    plugin_pb2 = _load(_PACKAGE, "plugin_pb2")
    provider_pb2 = _load(_PACKAGE, "provider_pb2")
    provider_pb2_grpc = _load(_PACKAGE, "provider_pb2_grpc")
    engine_pb2 = _load(_PACKAGE, "engine_pb2")
    engine_pb2_grpc = _load(_PACKAGE, "engine_pb2_grpc")
