import pytest
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.sandbox.inject import join, say
from siyu.communities.models import Group, Membership
from siyu.core.errors import NotFound
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db(transaction=True)


def test_say_runs_the_real_pipeline_and_reports_the_verdict():
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    Group.objects.create(workspace=ws, channel_account=account, external_id="sbx-room-1", name="福利1群", created_at=timezone.now())
    assert join(ws, group="福利1群", member="u1", member_name="小王")["status"] == "processed"
    ok = say(ws, group="sbx-room-1", member="u1", text="这件衣服有M码吗？")
    assert (ok["status"], ok["verdict"]) == ("processed", "allow")
    ad = say(ws, group="福利1群", member="u1", text="加我vx：lily_2020 有优惠")
    assert ad["verdict"] == "remove"
    assert ad["reasons"] == [{"detector": "wechat_id", "evidence": "lily_2020"}]
    assert Membership.objects.get(contact__name="小王").left_at is not None
    with pytest.raises(NotFound):
        say(ws, group="不存在的群", member="u1", text="hi")
