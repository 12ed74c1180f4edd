"""The callback endpoint through the real URLconf, view, inbox and pipeline."""

import threading
import time

import pytest
from django.db import connection
from django.test import Client

from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus
from siyu.channels.wecom.account import WeComSettings
from siyu.channels.wecom.testing import callback_xml, encrypted_callback
from siyu.channels.wecom.tests import vectors as v
from siyu.contacts.models import ChannelIdentity, Contact
from siyu.core.models import Workspace

pytestmark = pytest.mark.django_db

EXTERNAL = "woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"


def url(account) -> str:
    return f"/channels/wecom/{account.pk}/callback"


@pytest.fixture
def doc_account(connect_wecom):
    """An account configured with the documentation's worked example (加解密方案说明)."""
    return connect_wecom(corp_id=v.DOC_CORP_ID, token=v.DOC_TOKEN, aes_key=v.DOC_AES_KEY)


def post_event(account, xml: str, *, nonce: str = "1372623149", client: Client | None = None):
    crypto = WeComSettings.from_account(account).crypto()
    params, body = encrypted_callback(crypto, xml, timestamp=str(int(time.time())), nonce=nonce)
    query = "&".join(f"{k}={val}" for k, val in params.items())
    return (client or Client()).post(f"{url(account)}?{query}", data=body, content_type="text/xml")


def fresh(xml: str, **replace: str) -> str:
    """A documented event as if it happened now (a welcome_code lives 20 s)."""
    xml = xml.replace("<CreateTime>1403610513</CreateTime>", f"<CreateTime>{int(time.time())}</CreateTime>")
    for old, new in replace.items():
        xml = xml.replace(old, new)
    return xml


# ------------------------------------------------------------ GET: URL verification


def test_official_url_verification_vector_answers_the_plain_echostr(doc_account):
    response = Client().get(url(doc_account), v.DOC_VERIFY)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == v.DOC_VERIFY_PLAIN.encode()


def test_an_echostr_whose_plus_signs_arrived_as_spaces_still_verifies(doc_account):
    raw = "&".join(f"{k}={val}" for k, val in v.DOC_VERIFY.items())  # "+" unencoded → space on our side
    response = Client().get(f"{url(doc_account)}?{raw}")
    assert (response.status_code, response.content) == (200, v.DOC_VERIFY_PLAIN.encode())


def test_url_verification_with_a_wrong_signature_is_403_and_logged(doc_account, caplog):
    response = Client().get(url(doc_account), {**v.DOC_VERIFY, "msg_signature": "0" * 40})
    assert response.status_code == 403
    assert f"account {doc_account.pk}: URL verification refused: signature_mismatch" in caplog.text


def test_missing_parameters_are_400(doc_account):
    assert Client().get(url(doc_account), {"timestamp": "1", "nonce": "2"}).status_code == 400
    assert Client().get(url(doc_account), {k: val for k, val in v.DOC_VERIFY.items() if k != "echostr"}).status_code == 400


def test_unknown_inactive_or_non_wecom_accounts_are_404(doc_account):
    sandbox = do_create_channel_account(Workspace.objects.get(pk=doc_account.workspace_id), None, kind="sandbox", name="sbx")
    assert Client().get("/channels/wecom/999999/callback", v.DOC_VERIFY).status_code == 404
    assert Client().get(url(sandbox), v.DOC_VERIFY).status_code == 404
    doc_account.is_active = False
    doc_account.save(update_fields=["is_active"])
    assert Client().get(url(doc_account), v.DOC_VERIFY).status_code == 404


def test_only_get_and_post_are_allowed(doc_account):
    assert Client().put(url(doc_account)).status_code == 405


# ------------------------------------------------------------ POST: events


def test_the_documented_encrypted_post_is_accepted_and_kept(doc_account):
    query = f"msg_signature={v.DOC_POST_SIGNATURE}&timestamp={v.DOC_POST_TIMESTAMP}&nonce={v.DOC_POST_NONCE}"
    response = Client().post(f"{url(doc_account)}?{query}", data=v.DOC_POST_BODY, content_type="text/xml")
    assert (response.status_code, response.content) == (200, b"success")
    row = InboxEvent.objects.get(account=doc_account)
    # a text message to the app is valid but not customer-contact data: kept, not processed
    assert (row.kind, row.status, row.dedupe_key, row.raw) == (
        "unknown",
        InboxStatus.IGNORED,
        "msgid:4561255354251345929",
        v.DOC_POST_PLAIN,
    )


def test_a_post_with_a_wrong_signature_is_403_logged_and_stores_nothing(doc_account, caplog):
    query = f"msg_signature={'f' * 40}&timestamp={v.DOC_POST_TIMESTAMP}&nonce={v.DOC_POST_NONCE}"
    response = Client().post(f"{url(doc_account)}?{query}", data=v.DOC_POST_BODY, content_type="text/xml")
    assert response.status_code == 403
    assert "refused: signature_mismatch" in caplog.text
    assert InboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body", [b"", b"garbage", b"<xml><ToUserName>x</ToUserName></xml>", b'<!DOCTYPE x [<!ENTITY e "e">]><xml/>']
)
def test_a_garbage_body_is_400_and_stores_nothing(doc_account, body):
    query = f"msg_signature={v.DOC_POST_SIGNATURE}&timestamp={v.DOC_POST_TIMESTAMP}&nonce={v.DOC_POST_NONCE}"
    response = Client().post(f"{url(doc_account)}?{query}", data=body, content_type="text/xml")
    assert response.status_code == 400
    assert InboxEvent.objects.count() == 0


def test_a_correctly_signed_but_undecryptable_payload_is_400_and_stores_nothing(doc_account):
    crypto = WeComSettings.from_account(doc_account).crypto()
    bogus = "QUFBQUFBQUFBQUFBQUFBQQ=="  # valid base64, one AES block of nonsense
    body = f"<xml><Encrypt><![CDATA[{bogus}]]></Encrypt></xml>".encode()
    query = f"msg_signature={crypto.signature('1', '2', bogus)}&timestamp=1&nonce=2"
    response = Client().post(f"{url(doc_account)}?{query}", data=body, content_type="text/xml")
    assert response.status_code == 400
    assert InboxEvent.objects.count() == 0


def test_a_payload_encrypted_for_another_corp_is_400(doc_account, connect_wecom):
    other = connect_wecom(corp_id="wwOTHERCORP", token=v.DOC_TOKEN, aes_key=v.DOC_AES_KEY)
    crypto = WeComSettings.from_account(other).crypto()  # same key and token, other ReceiveId
    params, body = encrypted_callback(crypto, callback_xml("edit_external_contact"), timestamp="1", nonce="2")
    response = Client().post(
        f"{url(doc_account)}?" + "&".join(f"{k}={val}" for k, val in params.items()), data=body, content_type="text/xml"
    )
    assert response.status_code == 400
    assert InboxEvent.objects.count() == 0


def test_an_authentic_but_unparseable_payload_is_kept_as_malformed(doc_account):
    response = post_event(doc_account, "this is not xml")
    assert (response.status_code, response.content) == (200, b"success")
    row = InboxEvent.objects.get()
    assert (row.status, row.raw) == (InboxStatus.MALFORMED, "this is not xml")


def test_a_valid_unknown_event_is_stored_as_ignored(doc_account):
    post_event(doc_account, callback_xml("add_external_contact").replace("change_external_contact", "change_something_new"))
    row = InboxEvent.objects.get()
    assert (row.kind, row.status, row.data["event"]) == ("unknown", InboxStatus.IGNORED, "change_something_new")


@pytest.mark.django_db(transaction=True)
def test_a_replayed_event_is_one_inbox_row_processed_once(doc_account):
    xml = callback_xml("del_follow_user")
    for _ in range(3):
        assert post_event(doc_account, xml).status_code == 200
    row = InboxEvent.objects.get()
    assert (row.kind, row.status, row.attempts) == ("contact_deleted", InboxStatus.PROCESSED, 1)
    assert Contact.objects.get().events.filter(kind="deleted_by_customer").count() == 1


# ------------------------------------------------------------ the whole way: add event → contact + welcome


@pytest.mark.django_db(transaction=True)
def test_an_add_event_posted_three_times_concurrently_makes_one_contact_and_one_welcome(connect_wecom, fake):
    with fake.serve() as api_base:
        account = connect_wecom(api_base=api_base, corp_id=v.DOC_CORP_ID, token=v.DOC_TOKEN, aes_key=v.DOC_AES_KEY)
        xml = fresh(callback_xml("add_external_contact"), teststate="parcel_card:spring")
        crypto = WeComSettings.from_account(account).crypto()
        params, body = encrypted_callback(crypto, xml, timestamp=str(int(time.time())), nonce="1372623149")
        query = "&".join(f"{k}={val}" for k, val in params.items())
        statuses: list[int] = []
        errors: list[BaseException] = []
        start = threading.Barrier(3)

        def deliver_callback() -> None:
            try:
                start.wait()
                statuses.append(Client().post(f"{url(account)}?{query}", data=body, content_type="text/xml").status_code)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=deliver_callback) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert (errors, statuses) == ([], [200, 200, 200])
    assert InboxEvent.objects.filter(account=account).count() == 1
    assert InboxEvent.objects.get().status == InboxStatus.PROCESSED
    contact = Contact.objects.get()
    assert (contact.source_channel, contact.source_campaign) == ("parcel_card", "spring")
    assert ChannelIdentity.objects.get().external_id == EXTERNAL
    welcome = OutboxMessage.objects.get(command="send_welcome")
    assert (welcome.status, welcome.payload["welcome_code"], welcome.target) == (OutboxStatus.SENT, "WELCOMECODE", EXTERNAL)
    sent = fake.calls("/cgi-bin/externalcontact/send_welcome_msg")
    assert [call.body["welcome_code"] for call in sent] == ["WELCOMECODE"]
