"""``_exceptions``: every error of the project survives a pickle round trip, class, message and attributes
(issue 11, item 5), and every public error class has a sample here.
"""

from __future__ import annotations

import pickle

import pytest

from oppie_pulumi import (
    AmbiguousCreate,
    ApiError,
    ConfigError,
    DeadlineExceeded,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    OppieError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    _exceptions,
)

REQUEST = {"operation": "create phone agent 'A'", "method": "POST", "path": "/phone"}
API = {**REQUEST, "status_code": 503, "api_message": "down", "retry_after": 2.0}
SAMPLES: list[OppieError] = [
    OppieError("base"),
    ConfigError("no token"),
    TransportError("timed out", **REQUEST, may_have_reached_api=False),
    ApiError("api", **API),
    InvalidRequest("bad", **API),
    Unauthorized("who", **API),
    NotFound("gone", **API),
    RateLimited("slow down", **API),
    ServerError("down", **API),
    MalformedResponse("garbled", **API),
    AmbiguousCreate("two", candidate_ids=["a", "b"]),
    _exceptions.WrongBaseUrl("not the API", **API),
    DeadlineExceeded("would wait past the deadline"),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_project_error_survives_a_pickle_round_trip(error: OppieError) -> None:
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert str(restored) == str(error)
    assert vars(restored) == vars(error)


def test_every_error_class_is_sampled() -> None:
    classes = {
        name
        for name, value in vars(_exceptions).items()
        if isinstance(value, type) and issubclass(value, OppieError) and not name.startswith("_")
    }
    assert classes == {type(error).__name__ for error in SAMPLES}
