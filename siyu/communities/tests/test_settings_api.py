"""The group settings and auto-reply API, workspace-scoped."""

import pytest
from django.test import Client

from siyu.accounts.models import Role
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db


class Api:
    def __init__(self, staff):
        self.client, self.headers = Client(), {"Authorization": f"Bearer {make_token(staff)}"}

    def call(self, method, path, data=None):
        kwargs = {"content_type": "application/json"} if data is not None else {}
        return getattr(self.client, method)(f"/api/v1{path}", data, headers=self.headers, **kwargs)


def test_settings_and_auto_replies_round_trip_and_other_workspaces_see_nothing():
    ws, other = make_workspace(), make_workspace()
    api, outsider = Api(make_staff(ws, Role.OWNER)), Api(make_staff(other, Role.OWNER))
    group = do_create_group(ws, None, name="福利群")

    assert api.call("put", "/group-settings/defaults", {"capacity": 300}).json() == {"group_id": None, "group_type": None, "own": {"capacity": 300},
                                                                                      "effective": None}
    assert api.call("put", "/group-settings/templates/traffic", {"rules_link": "https://r.cn"}).status_code == 200
    response = api.call("put", f"/groups/{group.pk}/settings", {"welcome_message": "欢迎{member}"})
    assert response.status_code == 200
    body = response.json()
    assert body["own"] == {"welcome_message": "欢迎{member}"}
    assert body["effective"]["capacity"] == {"value": 300, "source": "default"}
    assert body["effective"]["rules_link"] == {"value": "https://r.cn", "source": "template:traffic"}
    assert api.call("put", f"/groups/{group.pk}/settings", {"capacity": 1}).json()["error"]["code"] == "invalid_capacity"
    assert outsider.call("get", f"/groups/{group.pk}/settings").status_code == 404

    created = api.call("post", "/auto-replies", {"name": "价格", "pattern": "多少钱", "reply": "看公告", "group_id": group.pk})
    assert created.status_code == 201
    rule_id = created.json()["id"]
    assert api.call("post", "/auto-replies", {"name": "坏", "match": "regex", "pattern": "(a+)+", "reply": "x"}).json()["error"]["code"] == "unsafe_regex"
    assert api.call("patch", f"/auto-replies/{rule_id}", {"cooldown_seconds": 60}).json()["cooldown_seconds"] == 60
    assert [r["name"] for r in api.call("get", "/auto-replies").json()] == ["价格"]
    assert outsider.call("get", "/auto-replies").json() == []
    assert outsider.call("delete", f"/auto-replies/{rule_id}").status_code == 404
    assert api.call("delete", f"/auto-replies/{rule_id}").status_code == 204
    assert api.call("get", "/auto-replies").json() == []


def test_refund_on_removal_is_set_through_the_api_and_validated():
    ws = make_workspace()
    api = Api(make_staff(ws, Role.OWNER))
    group = do_create_group(ws, None, name="付费会员群")
    assert api.call("get", f"/groups/{group.pk}/settings").json()["effective"]["refund_on_removal"] == {"value": True, "source": "built_in"}

    assert api.call("put", "/group-settings/defaults", {"refund_on_removal": False}).json()["own"] == {"refund_on_removal": False}
    assert api.call("get", f"/groups/{group.pk}/settings").json()["effective"]["refund_on_removal"] == {"value": False, "source": "default"}
    body = api.call("put", f"/groups/{group.pk}/settings", {"refund_on_removal": True}).json()
    assert body["effective"]["refund_on_removal"] == {"value": True, "source": "group"}

    bad = api.call("put", f"/groups/{group.pk}/settings", {"refund_on_removal": "否"})
    assert bad.status_code == 422
    assert bad.json()["error"] == {"code": "invalid_setting", "message": "refund_on_removal must be true or false"}
    assert api.call("get", f"/groups/{group.pk}/settings").json()["own"] == {"refund_on_removal": True}  # unchanged
