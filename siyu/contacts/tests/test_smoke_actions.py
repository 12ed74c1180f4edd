import pytest

from siyu.contacts.actions import do_tag_contacts
from siyu.contacts.models import ContactTag
from siyu.core.testing import make_contact, make_tag, make_workspace

pytestmark = pytest.mark.django_db


def test_exclusive_group_replaces_sibling_tag():
    ws = make_workspace()
    m = make_tag(ws, "M", group="尺码", exclusive=True)
    size_l = make_tag(ws, "L", group="尺码", exclusive=True)
    c = make_contact(ws, phone="13812345678")
    do_tag_contacts(ws, None, [c], [m])
    do_tag_contacts(ws, None, [c], [size_l])
    assert list(ContactTag.objects.filter(contact=c).values_list("tag__name", flat=True)) == ["L"]
    assert c.phone == "+8613812345678"
    assert c.phone_masked == "138****5678"
