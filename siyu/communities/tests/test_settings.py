"""Group settings resolve group → template for the type → workspace default → built-in."""

import pytest

from siyu.communities.actions import do_create_group, do_set_group_settings, do_set_settings_layer
from siyu.communities.group_settings import effective, render_template
from siyu.communities.models import Group, GroupSettings
from siyu.core.errors import ValidationFailed
from siyu.core.testing import make_workspace
from siyu.moderation.actions import do_set_policy

pytestmark = pytest.mark.django_db


def test_effective_settings_say_where_each_value_came_from():
    ws = make_workspace()
    group = do_create_group(ws, None, name="转化1群", group_type="conversion")
    do_set_settings_layer(ws, None, {"rules_link": "https://example.com/rules", "capacity": 300, "nudge_after_hours": 24})
    do_set_settings_layer(ws, None, {"capacity": 150, "welcome_message": "欢迎{member}来到{group}"}, group_type="conversion")
    do_set_group_settings(group, None, {"capacity": 120, "quiet_hours": {"start": "22:00", "end": "08:00"}})
    do_set_policy(ws, None, {"flood_count": 5})

    got = effective(group).as_dict()

    assert got["capacity"] == {"value": 120, "source": "group"}
    assert got["welcome_message"] == {"value": "欢迎{member}来到{group}", "source": "template:conversion"}
    assert got["rules_link"] == {"value": "https://example.com/rules", "source": "default"}
    assert got["nudge_after_hours"] == {"value": 24, "source": "default"}
    assert got["quiet_mode"] == {"value": "suppress", "source": "built_in"}
    assert got["moderation_policy"]["source"] == "default"
    group.refresh_from_db()
    assert group.capacity == 120  # mirrored on the group row

    do_set_group_settings(group, None, {"capacity": None})
    assert effective(group).as_dict()["capacity"] == {"value": 150, "source": "template:conversion"}
    group.refresh_from_db()
    assert group.capacity == 150  # the row follows the inherited value, not a hard-coded one


def test_a_template_or_default_capacity_reaches_the_groups_that_inherit_it():
    # given two conversion groups (one with its own capacity) and a traffic group
    ws = make_workspace()
    own = do_create_group(ws, None, name="转化1群", group_type="conversion")
    inherits = do_create_group(ws, None, name="转化2群", group_type="conversion")
    traffic = do_create_group(ws, None, name="福利1群", group_type="traffic")
    do_set_group_settings(own, None, {"capacity": 120})

    # when the conversion template and then the workspace default set capacities
    do_set_settings_layer(ws, None, {"capacity": 150}, group_type="conversion")
    do_set_settings_layer(ws, None, {"capacity": 400})

    # then each group's row carries the capacity that applies to it
    capacities = {g.name: g.capacity for g in Group.objects.filter(pk__in=[own.pk, inherits.pk, traffic.pk])}
    assert capacities == {"转化1群": 120, "转化2群": 150, "福利1群": 400}


def test_off_stops_an_inherited_quiet_hours_or_coupon_and_null_inherits_again():
    # given a workspace default with quiet hours and a welcome coupon
    from siyu.commerce.actions import do_create_coupon_template

    ws = make_workspace()
    coupon = do_create_coupon_template(ws, None, name="新人券", kind="fixed", value="5", validity_days=7)
    group = do_create_group(ws, None, name="福利1群")
    do_set_settings_layer(ws, None, {"quiet_hours": {"start": "22:00", "end": "08:00"}, "welcome_coupon_template": coupon.pk})
    assert effective(group)["quiet_hours"] == {"start": "22:00", "end": "08:00"}

    # when the group switches both off
    do_set_group_settings(group, None, {"quiet_hours": "off", "welcome_coupon_template": "off"})

    # then the effective values are "none", from the group, while the layer keeps "off"
    got = effective(group).as_dict()
    assert got["quiet_hours"] == {"value": None, "source": "group"}
    assert got["welcome_coupon_template"] == {"value": None, "source": "group"}
    assert GroupSettings.objects.get(group=group).values == {"quiet_hours": "off", "welcome_coupon_template": "off"}

    # and null inherits the default's again
    do_set_group_settings(group, None, {"quiet_hours": None, "welcome_coupon_template": None})
    got = effective(group).as_dict()
    assert got["quiet_hours"] == {"value": {"start": "22:00", "end": "08:00"}, "source": "default"}
    assert got["welcome_coupon_template"] == {"value": coupon.pk, "source": "default"}


@pytest.mark.parametrize(("values", "code"), [
    ({"colour": "red"}, "unknown_setting"),
    ({"capacity": 1}, "invalid_capacity"),
    ({"capacity": "off"}, "invalid_capacity"),  # "off" is only for quiet hours and the welcome coupon
    ({"quiet_hours": "never"}, "invalid_quiet_hours"),
    ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "invalid_quiet_hours"),
    ({"welcome_message": "欢迎{nickname}"}, "invalid_template"),
    ({"welcome_coupon_template": 999999}, "unknown_coupon_template"),
])
def test_invalid_settings_are_refused(values, code):
    ws = make_workspace()
    with pytest.raises(ValidationFailed) as err:
        do_set_settings_layer(ws, None, values)
    assert err.value.code == code


def test_welcome_variables_are_filled_and_unknown_ones_kept():
    assert render_template("欢迎{member}加入{group}，群规：{rules_link} {x}", member="小美", group="福利群", rules_link="r.cn") == \
        "欢迎小美加入福利群，群规：r.cn {x}"
