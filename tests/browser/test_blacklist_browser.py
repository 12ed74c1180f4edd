"""Blacklisting in bulk in a real browser: contacts ticked on the contact list are
blacklisted with the Blacklist button — which asks its own question, not the tag form's —,
and the blacklist tab's "select all" ticks the boxes tied to the bulk-lift form from the
table rows, whose entries are then lifted together."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import do_add_member, do_create_group
from siyu.communities.models import Membership
from siyu.contacts.actions import do_ensure_contact_for_identity
from siyu.moderation.models import BlacklistEntry
from tests.browser.helpers import log_in, tea_house

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_blacklist_ticked_contacts_then_lift_them_all(live_server, page):
    ws, _owner = tea_house()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    group = do_create_group(ws, None, name="茶友福利群", channel_account=account, external_id="room-tea")
    spammers = [do_ensure_contact_for_identity(account, f"spam{i}", name=name)[0] for i, name in enumerate(["广告哥", "刷单姐"])]
    do_ensure_contact_for_identity(account, "ann", name="小安")
    for contact in spammers:
        do_add_member(group, contact, None)
    log_in(page, live_server.url)

    # when the owner ticks the two spammers on the contact list and presses 拉黑
    page.goto(f"{live_server.url}/console/contacts/")
    for name in ("广告哥", "刷单姐"):
        page.get_by_role("checkbox", name=name).check()
    page.locator("#bulk-blacklist").locator("xpath=..").get_by_placeholder(re.compile(".")).fill("群发广告")
    questions: list[str] = []

    def answer(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.locator("#bulk-blacklist").click()

    # then the button's own question was asked, both are blacklisted and out of the group, 小安 is not
    expect(page.locator(".flash")).to_contain_text("已拉黑 2 位客户")
    assert len(questions) == 1 and "拉黑所选客户" in questions[0]
    assert sorted(BlacklistEntry.objects.filter(lifted_at__isnull=True, reason="群发广告").values_list("contact__name", flat=True)) == ["刷单姐", "广告哥"]
    assert not Membership.objects.filter(group=group, left_at__isnull=True).exists()

    # when they open 风控 → 黑名单, tick "select all" and lift
    page.goto(f"{live_server.url}/console/moderation/blacklist/")
    page.locator('#bulk-lift input[data-select-all="entry"]').check()
    expect(page.locator('input[form="bulk-lift"]:checked')).to_have_count(2)
    page.get_by_role("button", name="解除所选").click()

    # then both entries are lifted after the form's question
    expect(page.locator(".flash")).to_contain_text("已解除所选 2 条中的 2 条")
    assert len(questions) == 2 and "解除所选记录" in questions[1]
    assert not BlacklistEntry.objects.filter(lifted_at__isnull=True).exists()
    expect(page.locator("#blacklist tbody tr.inactive")).to_have_count(0)
