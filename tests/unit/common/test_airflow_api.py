"""The Airflow REST client builds the requests Airflow 3 expects, against a fake transport."""

from __future__ import annotations

import json

import httpx

from common.airflow_api import AirflowApi, fetch_token


def _api(paused: dict[str, bool], seen: list[httpx.Request]) -> AirflowApi:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        dag_id = request.url.path.rsplit("/", 1)[-1]
        if request.method == "PATCH":
            paused[dag_id] = json.loads(request.content)["is_paused"]
        return httpx.Response(200, json={"dag_id": dag_id, "is_paused": paused[dag_id]})

    return AirflowApi(httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(handle)))


def test_token_is_the_access_token_of_auth_token() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/auth/token")
        assert json.loads(request.content) == {"username": "admin", "password": "pw"}
        return httpx.Response(201, json={"access_token": "jwt"})

    client = httpx.Client(transport=httpx.MockTransport(handle))
    assert fetch_token("http://airflow/", "admin", "pw", client=client) == "jwt"


def test_pausing_patches_only_is_paused() -> None:
    seen: list[httpx.Request] = []
    api = _api({"fraud_pipeline": False}, seen)
    assert api.set_paused("fraud_pipeline", True)["is_paused"] is True
    (patch,) = seen
    assert (patch.method, patch.url.path) == ("PATCH", "/api/v2/dags/fraud_pipeline")
    assert patch.url.params["update_mask"] == "is_paused"
    assert json.loads(patch.content) == {"is_paused": True}


def test_setting_states_returns_the_old_ones_and_patches_only_what_changes() -> None:
    seen: list[httpx.Request] = []
    state = {"fraud_pipeline": False, "fraud_training": True}
    api = _api(state, seen)
    before = api.set_paused_states({"fraud_pipeline": True, "fraud_training": True})
    assert before == {"fraud_pipeline": False, "fraud_training": True}
    assert state == {"fraud_pipeline": True, "fraud_training": True}
    assert [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in seen if r.method == "PATCH"] == [
        ("PATCH", "fraud_pipeline")
    ]
    # and back
    api.set_paused_states(before)
    assert state == {"fraud_pipeline": False, "fraud_training": True}
