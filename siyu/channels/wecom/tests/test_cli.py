"""``siyu channels add-wecom``: connecting an app from the command line."""

import json

import pytest
from django.test import Client
from typer.testing import CliRunner

from siyu.accounts.models import AuditEntry
from siyu.channels.models import ChannelAccount
from siyu.channels.wecom.account import WeComSettings
from siyu.channels.wecom.cli import add_wecom_account, app
from siyu.channels.wecom.tests import vectors as v
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db

SECRET = "S3cr3t-app-secret-value"


def add_wecom(*args: str):
    return CliRunner().invoke(app, ["add-wecom", *args])


def official_args(slug: str) -> list[str]:
    return [
        "--workspace",
        slug,
        "--corp-id",
        v.DOC_CORP_ID,
        "--agent-id",
        "1000002",
        "--secret",
        SECRET,
        "--token",
        v.DOC_TOKEN,
        "--aes-key",
        v.DOC_AES_KEY,
    ]


def test_add_wecom_with_the_official_vectors_answers_the_documented_echostr():
    ws = make_workspace("brand")
    result = add_wecom(*official_args("brand"), "--json")
    assert result.exit_code == 0, result.output
    account = ChannelAccount.objects.get(workspace=ws, kind="wecom")
    info = json.loads(result.output)
    assert info == {
        "account_id": account.pk,
        "callback_path": f"/channels/wecom/{account.pk}/callback",
        "workspace": "brand",
        "corp_id": v.DOC_CORP_ID,
    }
    response = Client().get(info["callback_path"], v.DOC_VERIFY)
    assert (response.status_code, response.content) == (200, v.DOC_VERIFY_PLAIN.encode())


def test_credentials_are_stored_encrypted_and_the_secret_is_never_printed():
    make_workspace("brand")
    text = add_wecom(*official_args("brand")).output
    account = ChannelAccount.objects.get()
    stored = json.dumps(account.config)
    assert SECRET not in text and SECRET not in stored
    assert v.DOC_TOKEN not in stored and v.DOC_AES_KEY not in stored
    settings = WeComSettings.from_account(account)
    assert (settings.secret, settings.token, settings.aes_key, settings.agent_id) == (SECRET, v.DOC_TOKEN, v.DOC_AES_KEY, 1000002)
    assert SECRET not in repr(settings)
    assert f"/channels/wecom/{account.pk}/callback" in text
    audit = AuditEntry.objects.get(action="channel_account.created")
    assert (audit.via, audit.after) == ("cli", {"kind": "wecom", "name": f"{v.DOC_CORP_ID}/1000002"})


def test_credentials_may_come_from_the_environment(monkeypatch):
    make_workspace("brand")
    monkeypatch.setenv("SIYU_WECOM_SECRET", SECRET)
    monkeypatch.setenv("SIYU_WECOM_TOKEN", v.DOC_TOKEN)
    monkeypatch.setenv("SIYU_WECOM_AES_KEY", v.DOC_AES_KEY)
    result = add_wecom("--workspace", "brand", "--corp-id", v.DOC_CORP_ID, "--agent-id", "1000002", "--json")
    assert result.exit_code == 0, result.output
    assert WeComSettings.from_account(ChannelAccount.objects.get()).secret == SECRET


def test_connecting_the_same_app_twice_is_refused():
    make_workspace("brand")
    add_wecom(*official_args("brand"))
    result = add_wecom(*official_args("brand"), "--json", "--name", "again")
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] == "wecom_account_exists"
    assert ChannelAccount.objects.count() == 1


@pytest.mark.parametrize(
    ("override", "code"),
    [
        (["--aes-key", "tooshort"], "wecom_invalid_aes_key"),
        (["--token", "a b"], "wecom_invalid_token"),
        (["--corp-id", " "], "wecom_corp_id_required"),
        (["--workspace", "nope"], "not_found"),
    ],
)
def test_bad_input_is_refused_with_a_code_and_nothing_is_created(override, code):
    make_workspace("brand")
    args = official_args("brand")
    flag = override[0]
    args[args.index(flag) + 1] = override[1]
    result = add_wecom(*args, "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] == code
    assert ChannelAccount.objects.count() == 0


def test_the_plain_function_returns_the_same_dict():
    make_workspace("shop")
    info = add_wecom_account("shop", "ww1436e0e65a779aee", 1000002, SECRET, v.SAMPLE_TOKEN, v.SAMPLE_AES_KEY)
    account = ChannelAccount.objects.get()
    assert info == {
        "account_id": account.pk,
        "callback_path": f"/channels/wecom/{account.pk}/callback",
        "workspace": "shop",
        "corp_id": "ww1436e0e65a779aee",
    }
