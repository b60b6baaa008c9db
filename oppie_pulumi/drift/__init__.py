"""``oppie-pulumi drift``: a drift review of a fleet of phone agents across stacks.

- ``stacks``: what each stack holds, read through the Pulumi CLI (read-only, no lock taken);
- ``review``: the verdict on every agent, with the core's own refresh and diff rules;
- ``report``: the review as text, JSON (``schema.json``) or markdown.

``run`` reads the stacks, lists each organisation they point at once (shared by all its stacks), and reviews.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from .._exceptions import OppieError
from .review import Organisation, Review, review
from .stacks import StackRef, StackState, read

__all__ = ["Organisation", "Review", "StackRef", "run"]


def run(
    refs: Sequence[StackRef],
    *,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
    reader: Callable[[StackRef], StackState] | None = None,
) -> Review:
    """Read every stack, list every organisation once, and review."""

    def one(ref: StackRef) -> StackState:
        progress(f"reading stack {ref.label}")
        return reader(ref) if reader is not None else read(ref, environ=environ)

    # Each read is two `pulumi` runs, most of a review's time: a few at once (order kept).
    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(one, refs))
    groups: dict[tuple[str, str | None], list[StackState]] = {}
    for state in states:
        if state.settings is not None and state.error is None:
            groups.setdefault((state.settings.base_url, state.settings.api_token), []).append(state)
    organisations = []
    for (base_url, _token), members in groups.items():
        org = Organisation(base_url, [state.ref.label for state in members])
        progress(f"listing the agents at {base_url} (one call for {len(members)} stack(s))")
        from .._client import PhoneApiClient  # httpx, only when the review calls the API

        try:
            with PhoneApiClient(members[0].settings) as client:  # type: ignore[arg-type]
                org.agents = client.list(operation="list phone agents for the drift review")
        except OppieError as exc:
            org.error = str(exc)
        organisations.append(org)
    return review(states, organisations)
