"""Writes specific to the WeCom channel: connecting an app, mirroring the corp tag library.

Like every ``actions`` module these validate, write inside a transaction and record an
audit entry; the generic writes go through the owning domain's actions
(:func:`siyu.channels.actions.do_create_channel_account`, the tag actions of
:mod:`siyu.contacts.actions`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.channels.wecom.account import build_config
from siyu.channels.wecom.crypto import InvalidKey, decode_key
from siyu.contacts.actions import do_create_tag, do_create_tag_group, do_delete_tag, do_rename_tag
from siyu.contacts.models import Tag, TagGroup
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.models import Workspace

__all__ = ["CORP_TAG_GROUP", "do_connect_wecom", "do_sync_corp_tags"]

#: the siyu tag group that mirrors the WeCom corp tag library (企业标签)
CORP_TAG_GROUP = "企业微信标签"
#: WeCom's callback Token: letters and digits, 3 to 32 characters (admin console rule)
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")


def do_connect_wecom(
    workspace: Workspace,
    actor: Staff | None,
    *,
    corp_id: str,
    agent_id: int,
    secret: str,
    token: str,
    aes_key: str,
    name: str = "",
    api_base: str | None = None,
) -> ChannelAccount:
    """Connect a WeCom self-built app (自建应用) to the workspace, with its credentials
    stored encrypted. Refuses a second connection of the same app. Records
    ``channel_account.created`` (without any credential)."""
    require(actor, Perm.MANAGE_WORKSPACE)
    corp_id, secret, token, aes_key = corp_id.strip(), secret.strip(), token.strip(), aes_key.strip()
    if not corp_id:
        raise ValidationFailed("corp id (企业ID) is required", code="wecom_corp_id_required")
    if agent_id <= 0:
        raise ValidationFailed("agent id (AgentId) must be a positive number", code="wecom_invalid_agent_id")
    if not secret:
        raise ValidationFailed("the app secret is required", code="wecom_secret_required")
    if not _TOKEN.match(token):
        raise ValidationFailed("Token must be 3 to 32 letters or digits", code="wecom_invalid_token")
    try:
        decode_key(aes_key)
    except InvalidKey as exc:
        raise ValidationFailed(f"invalid EncodingAESKey: {exc}", code="wecom_invalid_aes_key") from exc
    name = (name or f"{corp_id}/{agent_id}").strip()[:100]
    with transaction.atomic():
        accounts = ChannelAccount.objects.in_workspace(workspace).filter(kind=ChannelKind.WECOM)
        for existing in accounts:
            if existing.name == name or (existing.external_id == corp_id and (existing.config or {}).get("agent_id") == agent_id):
                raise Conflict(
                    f"WeCom app {corp_id}/{agent_id} is already connected as account {existing.pk} ({existing.name})",
                    code="wecom_account_exists",
                )
        config = build_config(corp_id=corp_id, agent_id=agent_id, secret=secret, token=token, aes_key=aes_key, api_base=api_base)
        return do_create_channel_account(workspace, actor, kind=ChannelKind.WECOM, name=name, external_id=corp_id, config=config)


def _tag_name(group_name: str, tag_name: str) -> str:
    # WeCom tag names are unique only inside their group; siyu's mirror is one group, so
    # the WeCom group name becomes a prefix. Tag names may not contain "/" in siyu.
    return f"{group_name}:{tag_name}".replace("/", "／")[:50]


def do_sync_corp_tags(account: ChannelAccount, tag_groups: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Mirror the WeCom corp tag library (the ``tag_group`` list of
    ``get_corp_tag_list``) into the siyu tag group 「企业微信标签」: new WeCom tags are
    created, renamed ones renamed, deleted ones deleted — through the contacts tag
    actions, which record their own audit entries. The WeCom-id → siyu-tag mapping is
    kept in the account config (``corp_tag_map``); a change of it records
    ``channel_account.tag_map_updated``. Returns counts of what changed."""
    counts = {"created": 0, "renamed": 0, "deleted": 0}
    with transaction.atomic():
        locked = ChannelAccount.objects.select_for_update().get(pk=account.pk)
        workspace = Workspace.objects.get(pk=locked.workspace_id)
        config = dict(locked.config or {})
        mapping: dict[str, int] = {str(k): int(v) for k, v in (config.get("corp_tag_map") or {}).items()}
        group = TagGroup.objects.in_workspace(workspace).filter(name=CORP_TAG_GROUP).first()
        if group is None:
            group = do_create_tag_group(workspace, None, name=CORP_TAG_GROUP)
        wanted: dict[str, str] = {}
        for tag_group in tag_groups:
            if tag_group.get("deleted"):
                continue
            for tag in tag_group.get("tag", []):
                if not tag.get("deleted") and tag.get("id"):
                    wanted[str(tag["id"])] = _tag_name(str(tag_group.get("group_name", "")), str(tag.get("name", "")))
        tags = {t.pk: t for t in Tag.objects.in_workspace(workspace).filter(group=group)}
        new_mapping: dict[str, int] = {}
        for wecom_id, name in wanted.items():
            tag = tags.get(mapping.get(wecom_id, -1))
            if tag is None:
                # A same-named tag (made by hand, or a lost mapping) is adopted, not duplicated.
                tag = next((t for t in tags.values() if t.name == name), None)
                if tag is None:
                    tag = do_create_tag(workspace, None, group=group, name=name)
                    tags[tag.pk] = tag
                    counts["created"] += 1
            elif tag.name != name:
                do_rename_tag(tag, None, name=name)
                counts["renamed"] += 1
            new_mapping[wecom_id] = tag.pk
        kept = set(new_mapping.values())
        for wecom_id, tag_id in mapping.items():
            if wecom_id not in new_mapping and tag_id not in kept and tag_id in tags:
                do_delete_tag(tags.pop(tag_id), None)
                counts["deleted"] += 1
        if new_mapping != mapping:
            config["corp_tag_map"] = new_mapping
            locked.config = config
            locked.save(update_fields=["config"])
            record_audit(
                workspace, None, "channel_account.tag_map_updated", target=locked, after={"tags": len(new_mapping), **counts}
            )
    return counts
