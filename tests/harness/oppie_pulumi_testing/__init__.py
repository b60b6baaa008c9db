"""Test machinery for stacks of oppie-pulumi's ``PhoneAgent``: a stand-in engine and a driver of the real CLI.

A distribution of its own (``oppie-pulumi-testing``), never shipped in the ``oppie-pulumi`` wheel.
"""

from .engine import (
    Engine,
    HostError,
    ProviderHost,
    Registration,
    StateEntry,
    Summary,
    as_sent_to_provider,
    run_program,
)

__all__ = [
    "Engine",
    "HostError",
    "ProviderHost",
    "Registration",
    "StateEntry",
    "Summary",
    "as_sent_to_provider",
    "run_program",
]
