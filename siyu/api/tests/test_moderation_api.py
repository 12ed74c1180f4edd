import pytest

from siyu.accounts.models import Role
from siyu.api.tests.conftest import ApiClient, client_for
from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import do_add_member, do_create_group, do_record_group_message
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace
from siyu.moderation.actions import do_moderate_message

pytestmark = pytest.mark.django_db

ADVERT = "想要同款的加我微信，电话 138 1234 5678"


def _case(workspace, text=ADVERT, *, owner=None, group_name="福利1群"):
    account = do_create_channel_account(workspace, None, kind="sandbox", name=f"sbx-{group_name}")
    group = do_create_group(workspace, None, name=group_name, channel_account=account, external_id=f"room-{group_name}")
    contact = make_contact(workspace, "Bob", owner=owner)
    do_add_member(group, contact, None)
    message, _ = do_record_group_message(group, contact, external_id=f"$m-{group_name}", text=text,
                                         data={"sender_external_id": "@bob:x"})
    return do_moderate_message(message, account), group, contact


def test_cases_list_the_verdict_the_reasons_and_what_was_done(api, workspace):
    case, group, contact = _case(workspace)
    body = api.get("/moderation/cases").json()
    assert body["count"] == 1
    item = body["items"][0]
    assert (item["id"], item["group_id"], item["contact_id"], item["message_id"]) == (case.pk, group.pk, contact.pk, case.message_id)
    assert (item["verdict"], item["text"], item["undone_at"]) == ("remove", ADVERT, None)
    assert [r["detector"] for r in item["reasons"]] == ["phone", "wechat_id"]
    assert [a["command"] for a in item["applied"] if "outbox" in a] == ["delete_message", "remove_member", "send_message"]


def test_filters_and_pagination(api, workspace):
    _, first_group, _ = _case(workspace, group_name="一群")
    _case(workspace, "看这里 www.example.com", group_name="二群")
    assert [c["verdict"] for c in api.get("/moderation/cases").json()["items"]] == ["delete", "remove"]
    assert api.get("/moderation/cases", {"group_id": first_group.pk}).json()["count"] == 1
    assert api.get("/moderation/cases", {"verdict": "delete"}).json()["items"][0]["text"] == "看这里 www.example.com"
    page = api.get("/moderation/cases", {"limit": 1, "offset": 1}).json()
    assert (page["count"], [c["verdict"] for c in page["items"]]) == (2, ["remove"])
    assert api.get("/moderation/cases", {"limit": 0}).json()["error"]["code"] == "invalid_pagination"


def test_phone_numbers_are_masked_without_the_pii_permission(workspace):
    _case(workspace)
    operator = client_for(make_staff(workspace, Role.OPERATOR))
    assert operator.get("/moderation/cases").json()["items"][0]["text"] == "想要同款的加我微信，电话 138****5678"


def test_agents_see_only_cases_about_their_own_contacts(workspace):
    agent = make_staff(workspace, Role.AGENT)
    _case(workspace, group_name="别人的群")
    mine, _, _ = _case(workspace, owner=agent, group_name="我的群")
    items = client_for(agent).get("/moderation/cases").json()["items"]
    assert [c["id"] for c in items] == [mine.pk]


def test_another_workspaces_cases_are_invisible_and_a_token_is_required(api, workspace):
    other = make_workspace()
    _case(other)
    assert api.get("/moderation/cases").json() == {"count": 0, "items": []}
    assert ApiClient(make_token(make_staff(other))).get("/moderation/cases").json()["count"] == 1
    assert ApiClient(None).get("/moderation/cases").status_code == 401
