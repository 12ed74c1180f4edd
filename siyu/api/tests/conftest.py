from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from siyu.accounts.models import Role
from siyu.core.testing import make_staff, make_token, make_workspace


class ApiClient:
    """Test client that speaks JSON with a bearer token."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, data: Any = None) -> Any:
        return self.client.get(f"/api/v1{path}", data, headers=self.headers)

    def post(self, path: str, data: Any = None) -> Any:
        return self.client.post(f"/api/v1{path}", data or {}, content_type="application/json", headers=self.headers)

    def patch(self, path: str, data: Any) -> Any:
        return self.client.patch(f"/api/v1{path}", data, content_type="application/json", headers=self.headers)

    def put(self, path: str, data: Any) -> Any:
        return self.client.put(f"/api/v1{path}", data, content_type="application/json", headers=self.headers)

    def delete(self, path: str) -> Any:
        return self.client.delete(f"/api/v1{path}", headers=self.headers)


@pytest.fixture
def workspace():
    return make_workspace("acme")


@pytest.fixture
def owner(workspace):
    return make_staff(workspace, Role.OWNER, email="owner@acme.test")


@pytest.fixture
def api(owner):
    return ApiClient(make_token(owner))


def client_for(staff) -> ApiClient:
    return ApiClient(make_token(staff))
