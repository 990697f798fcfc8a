"""The server against its own OpenAPI schema (schemathesis): generated valid and invalid requests to every
operation never get a 5xx, and every response matches the schema (status codes, content types, bodies)."""

import pytest
import schemathesis
from helpers import TOKEN, FullRM, running
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server_url():
    with running(FullRM(), token=TOKEN, max_request_items=64, max_body_mb=1) as url:
        yield url


def test_api_conforms_to_its_schema(server_url):
    """Hypothesis drives each operation directly: schemathesis's pytest plugin does not load under pytest 9."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    api = schemathesis.openapi.from_url(server_url + "/openapi.json", headers=auth)
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/score", "/get_reward", "/health", "/ready", "/metrics"}
    for operation in operations:
        negative = operation.method.upper() == "POST"  # a GET without parameters has no invalid form
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if negative else (GenerationMode.POSITIVE,):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def check(case):
                case.call_and_validate(base_url=server_url, headers=auth, checks=CHECKS)

            check()
