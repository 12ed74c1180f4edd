"""Login, logout, choosing and switching workspaces, and the console language."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from siyu.accounts.actions import do_update_staff
from siyu.accounts.models import Role
from siyu.core.testing import make_contact, make_staff, make_workspace

pytestmark = pytest.mark.django_db


def test_login_with_email_of_any_case_lands_on_contacts_of_the_only_workspace():
    # given a staff member of one workspace
    ws = make_workspace(name="Tea House")
    make_staff(ws, Role.OWNER, email="li.na@example.com", password="secret-pass-1")
    make_contact(ws, name="王小明")
    client = Client()

    # when they log in with their email in another case
    response = client.post("/console/login/", {"username": "Li.Na@Example.com", "password": "secret-pass-1"}, follow=True)

    # then they see the contacts of their workspace, which is now the session's
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/console/contacts/"
    assert "王小明" in response.content.decode()
    assert client.session["siyu_workspace_id"] == ws.pk
    assert client.session["siyu_workspace_lang"] == "zh-hans"


def test_wrong_password_shows_the_form_again_with_an_error():
    ws = make_workspace()
    make_staff(ws, Role.OWNER, email="a@example.com", password="secret-pass-1")

    response = Client().post("/console/login/?lang=en", {"username": "a@example.com", "password": "nope-nope"})

    assert response.status_code == 200
    assert "Please enter a correct" in response.content.decode()


def test_console_pages_need_a_login():
    response = Client().get("/console/contacts/")

    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/contacts/"


def test_root_redirects_to_the_console():
    response = Client().get("/")

    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_logout_ends_the_session():
    ws = make_workspace()
    staff = make_staff(ws, Role.OWNER)
    client = Client()
    client.force_login(staff.user)

    response = client.post("/console/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/console/login/"
    assert client.get("/console/contacts/").status_code == 302


def test_user_of_two_workspaces_picks_one_and_sees_only_its_data():
    # given one person who is staff of two workspaces, each with its own contact
    shop_a, shop_b = make_workspace(name="Shop A"), make_workspace(name="Shop B")
    make_staff(shop_a, Role.OWNER, email="both@example.com", password="secret-pass-1")
    make_staff(shop_b, Role.OPERATOR, email="both@example.com", password="secret-pass-1")
    make_contact(shop_a, name="Contact of A")
    make_contact(shop_b, name="Contact of B")
    client = Client()
    client.post("/console/login/", {"username": "both@example.com", "password": "secret-pass-1"})

    # when they open the console they are asked which workspace
    picker = client.get("/console/contacts/")
    assert picker.status_code == 302
    assert picker["Location"] == "/console/workspaces/?next=/console/contacts/"
    page = client.get(picker["Location"]).content.decode()
    assert "Shop A" in page and "Shop B" in page

    # and after choosing A they see A's contact only
    chosen = client.post("/console/workspaces/", {"workspace": shop_a.pk, "next": "/console/contacts/"})
    assert chosen["Location"] == "/console/contacts/"
    body = client.get("/console/contacts/").content.decode()
    assert "Contact of A" in body and "Contact of B" not in body

    # and after switching to B (header switcher) they see B's contact only
    switched = client.post("/console/workspaces/", {"workspace": shop_b.pk})
    assert switched["Location"] == "/console/contacts/"
    body = client.get("/console/contacts/").content.decode()
    assert "Contact of B" in body and "Contact of A" not in body
    assert client.session["siyu_workspace_id"] == shop_b.pk


def test_switching_into_a_workspace_one_does_not_belong_to_is_a_404(console_client):
    mine, theirs = make_workspace(), make_workspace()
    me = make_staff(mine, Role.OWNER)
    make_contact(theirs, name="Secret contact")
    client = console_client(me)

    response = client.post("/console/workspaces/", {"workspace": theirs.pk})

    assert response.status_code == 404
    assert client.session["siyu_workspace_id"] == mine.pk
    assert "Secret contact" not in client.get("/console/contacts/").content.decode()


def test_a_session_pointing_at_a_foreign_workspace_is_a_404():
    mine, theirs = make_workspace(), make_workspace()
    me = make_staff(mine, Role.OWNER)
    client = Client()
    client.force_login(me.user)
    session = client.session
    session["siyu_workspace_id"] = theirs.pk
    session.save()

    response = client.get("/console/contacts/")

    assert response.status_code == 404
    # the stale choice is forgotten, so the next request lands in the user's own workspace
    assert client.get("/console/contacts/").status_code == 200


def test_deactivated_staff_lose_the_workspace(console_client):
    ws = make_workspace()
    owner = make_staff(ws, Role.OWNER)
    agent = make_staff(ws, Role.AGENT)
    client = console_client(agent)
    do_update_staff(agent, owner, is_active=False)

    assert client.get("/console/contacts/").status_code == 404


def test_user_without_any_workspace_gets_a_403_page():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("nobody@example.com", "nobody@example.com", "secret-pass-1")
    client = Client()
    client.force_login(user)

    response = client.get("/console/contacts/?lang=en")

    assert response.status_code == 403
    assert "not an active staff member of any workspace" in response.content.decode()


def test_chinese_is_the_default_language():
    ws = make_workspace()
    staff = make_staff(ws, Role.OWNER)
    client = Client()
    client.force_login(staff.user)

    login_page = Client().get("/console/login/").content.decode()
    contacts_page = client.get("/console/contacts/")

    assert "登录" in login_page
    assert contacts_page["Content-Language"] == "zh-hans"
    body = contacts_page.content.decode()
    assert "客户" in body and "标签" in body and "审计日志" in body
    assert "Audit log" not in body


def test_lang_parameter_switches_to_english_for_the_session():
    ws = make_workspace()
    staff = make_staff(ws, Role.OWNER)
    client = Client()
    client.force_login(staff.user)

    first = client.get("/console/contacts/?lang=en")
    later = client.get("/console/tags/")

    assert first["Content-Language"] == "en"
    assert "Audit log" in first.content.decode()
    assert later["Content-Language"] == "en"
    assert "New tag group" in later.content.decode()
    assert client.get("/console/tags/?lang=zh-hans")["Content-Language"] == "zh-hans"


def test_a_console_request_leaves_the_threads_language_as_it_found_it():
    # given an English workspace's console, and the thread speaking Chinese (the default)
    ws = make_workspace(language="en")
    staff = make_staff(ws, Role.OWNER)
    client = Client()
    client.force_login(staff.user)
    translation.activate("zh-hans")

    # when a page is served in English (the session's and then the workspace's choice)
    response = client.get("/console/contacts/?lang=en")

    # then only that request spoke English: what runs next on the thread still speaks Chinese
    assert response["Content-Language"] == "en"
    assert translation.get_language() == "zh-hans"
    with translation.override("en"):
        client.get("/console/tags/?lang=zh-hans")
        assert translation.get_language() == "en"


def test_an_english_workspace_speaks_english_by_default():
    ws = make_workspace(language="en")
    staff = make_staff(ws, Role.OWNER)
    client = Client()
    client.force_login(staff.user)

    response = client.get("/console/contacts/")

    assert response["Content-Language"] == "en"
    assert "Audit log" in response.content.decode()


def test_owners_get_a_link_to_django_admin_and_others_do_not(console_client):
    ws = make_workspace()
    owner, operator = make_staff(ws, Role.OWNER), make_staff(ws, Role.OPERATOR)

    assert 'href="/admin/"' in console_client(owner).get("/console/contacts/").content.decode()
    assert 'href="/admin/"' not in console_client(operator).get("/console/contacts/").content.decode()
