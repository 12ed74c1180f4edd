"""Moderation's removal tasks made before their evidence named the stay they are about.

Since then a ``moderation_remove_member`` staff task carries ``group_id`` and
``contact_id`` in its ``detail``, and the platform's member-left report closes it
(``siyu.communities.actions.do_close_removal_task``). Older tasks lack both and stayed
open until someone ticked them off. Their key still says which stay they were for:

- ``task:mod:<message>:remove`` (a remove or blacklist verdict on a message): the case
  of that message (its group and contact), else the stored message (group and sender);
- ``task:blacklist:join:<membership>:remove`` (the blacklist enforced on a join): that
  membership's group and contact;
- ``task:blacklist:<case or contact>:<group>:remove`` (a blacklist carried to the
  contact's other groups): that group, and the contact of the case whose log lists the
  task — else, for a ban made by hand (no case), the contact the key names.

A task whose key names nothing found in its own workspace is left as it is.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import migrations

KIND = "moderation_remove_member"


MOD = re.compile(r"^task:mod:(\d+):remove$")  # a verdict on message <1>
JOIN = re.compile(r"^task:blacklist:join:(\d+):remove$")  # the blacklist enforced on membership <1>
CARRIED = re.compile(r"^task:blacklist:(\d+):(\d+):remove$")  # a ban (case or contact <1>) carried to group <2>


def _stay(apps: Any, task: Any) -> tuple[int, int] | None:
    """(group id, contact id) the task's key names, within the task's workspace."""
    ModerationCase = apps.get_model("moderation", "ModerationCase")
    GroupMessage = apps.get_model("communities", "GroupMessage")
    Membership = apps.get_model("communities", "Membership")
    Group = apps.get_model("communities", "Group")
    Contact = apps.get_model("contacts", "Contact")

    ws, key = task.workspace_id, task.dedupe_key
    if match := MOD.match(key):
        message_id = int(match[1])
        case = ModerationCase.objects.filter(workspace_id=ws, message_id=message_id).exclude(contact_id=None).order_by("id").first()
        if case is not None:
            return case.group_id, case.contact_id
        stay = GroupMessage.objects.filter(workspace_id=ws, pk=message_id).exclude(sender_id=None).values_list("group_id", "sender_id").first()
    elif match := JOIN.match(key):
        stay = Membership.objects.filter(workspace_id=ws, pk=int(match[1])).values_list("group_id", "contact_id").first()
    elif match := CARRIED.match(key):
        named, group_id = int(match[1]), int(match[2])
        if not Group.objects.filter(workspace_id=ws, pk=group_id).exists():
            return None
        case = ModerationCase.objects.filter(workspace_id=ws, pk=named).first()
        if case is not None and any(isinstance(step, dict) and step.get("staff_task") == task.pk for step in case.applied or ()):
            return (group_id, case.contact_id) if case.contact_id else None
        stay = (group_id, named) if Contact.objects.filter(workspace_id=ws, pk=named).exists() else None
    else:
        return None
    return (stay[0], stay[1]) if stay else None


def name_the_stay(apps: Any, schema_editor: Any) -> None:
    StaffTask = apps.get_model("channels", "StaffTask")
    for task in StaffTask.objects.filter(kind=KIND).order_by("id").iterator():
        detail = task.detail if isinstance(task.detail, dict) else {}
        if detail.get("group_id") and detail.get("contact_id"):
            continue
        stay = _stay(apps, task)
        if stay is not None:
            task.detail = {**detail, "group_id": stay[0], "contact_id": stay[1]}
            task.save(update_fields=["detail"])


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0002_moderationcase_note_moderationcase_rule_and_more"),
        ("channels", "0003_inbox_fewer_indexes"),
        ("communities", "0008_group_dismiss_at_end"),
        ("contacts", "0002_contactevent_fewer_indexes"),
    ]

    # the reverse leaves the names in place: newer code writes them anyway
    operations = [migrations.RunPython(name_the_stay, migrations.RunPython.noop)]
