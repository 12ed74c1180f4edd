"""Tags API: tag groups, tags, automatic tag rules and custom profile fields."""


import datetime as dt
from typing import Any

from django.db.models import Count
from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS
from siyu.contacts import actions, rules
from siyu.contacts.models import ProfileField, Tag, TagGroup, TagRule

router = Router(tags=["tags"])


class TagOut(Schema):
    id: int
    group_id: int
    group: str
    name: str
    contacts: int = 0

    @staticmethod
    def resolve_group(obj: Tag) -> str:
        return obj.group.name

    @staticmethod
    def resolve_contacts(obj: Tag) -> int:
        return getattr(obj, "contact_count", 0)


class TagGroupOut(Schema):
    id: int
    name: str
    kind: str
    exclusive: bool
    tags: list[TagOut]

    @staticmethod
    def resolve_tags(obj: TagGroup) -> list[Tag]:
        return list(obj.tags.all())


class TagGroupIn(Schema):
    name: str = Field(min_length=1, max_length=50)
    kind: str = "business"
    exclusive: bool = False


class TagIn(Schema):
    name: str = Field(min_length=1, max_length=50)


def _groups(request: HttpRequest) -> Any:
    from django.db.models import Prefetch

    tags = Tag.objects.in_workspace(ws(request)).select_related("group").annotate(contact_count=Count("contact_links"))
    return TagGroup.objects.in_workspace(ws(request)).prefetch_related(Prefetch("tags", queryset=tags))


@router.get("/tag-groups", response={200: list[TagGroupOut], **ERRORS})
def list_tag_groups(request: HttpRequest) -> Any:
    return list(_groups(request))


@router.post("/tag-groups", response={201: TagGroupOut, **ERRORS})
def create_tag_group(request: HttpRequest, payload: TagGroupIn) -> Any:
    group = actions.do_create_tag_group(ws(request), me(request), name=payload.name, kind=payload.kind, exclusive=payload.exclusive)
    return Status(201, _groups(request).get(pk=group.pk))


@router.post("/tag-groups/{int:group_id}/tags", response={201: TagOut, **ERRORS})
def create_tag(request: HttpRequest, group_id: int, payload: TagIn) -> Any:
    group = TagGroup.objects.get_in_workspace(ws(request), pk=group_id)
    return Status(201, actions.do_create_tag(ws(request), me(request), group=group, name=payload.name))


@router.get("/tags", response={200: list[TagOut], **ERRORS})
def list_tags(request: HttpRequest) -> Any:
    return list(Tag.objects.in_workspace(ws(request)).select_related("group").annotate(contact_count=Count("contact_links")))


@router.patch("/tags/{int:tag_id}", response={200: TagOut, **ERRORS})
def rename_tag(request: HttpRequest, tag_id: int, payload: TagIn) -> Any:
    tag = Tag.objects.select_related("group").get_in_workspace(ws(request), pk=tag_id)
    return actions.do_rename_tag(tag, me(request), name=payload.name)


@router.delete("/tags/{int:tag_id}", response={204: None, **ERRORS})
def delete_tag(request: HttpRequest, tag_id: int) -> Any:
    tag = Tag.objects.select_related("group").get_in_workspace(ws(request), pk=tag_id)
    actions.do_delete_tag(tag, me(request))
    return Status(204, None)


class RuleOut(Schema):
    id: int
    name: str
    tag_id: int
    match: str
    conditions: list[dict[str, Any]]
    remove_when_unmet: bool
    is_active: bool
    created_at: dt.datetime
    last_run_at: dt.datetime | None


class RuleIn(Schema):
    name: str = Field("", max_length=100)
    tag: str = Field(description="tag id, group/name or unique name")
    conditions: list[dict[str, Any]] = Field(min_length=1, max_length=20)
    match: str = "all"
    remove_when_unmet: bool = False


class RulePatch(Schema):
    name: str | None = Field(None, max_length=100)
    conditions: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=20)
    is_active: bool | None = None


@router.get("/tag-rules", response={200: list[RuleOut], **ERRORS})
def list_rules(request: HttpRequest) -> Any:
    return list(TagRule.objects.in_workspace(ws(request)))


@router.post("/tag-rules", response={201: RuleOut, **ERRORS})
def create_rule(request: HttpRequest, payload: RuleIn) -> Any:
    from siyu.contacts.queries import resolve_tags

    tag = resolve_tags(ws(request), [payload.tag])[0]
    rule = rules.do_create_tag_rule(
        ws(request), me(request), name=payload.name, tag=tag, conditions=payload.conditions,
        match=payload.match, remove_when_unmet=payload.remove_when_unmet,
    )
    rule.refresh_from_db()
    return Status(201, rule)


@router.patch("/tag-rules/{int:rule_id}", response={200: RuleOut, **ERRORS})
def update_rule(request: HttpRequest, rule_id: int, payload: RulePatch) -> Any:
    rule = TagRule.objects.get_in_workspace(ws(request), pk=rule_id)
    return rules.do_update_tag_rule(rule, me(request), **payload.dict(exclude_unset=True))


class RunOut(Schema):
    contacts: int
    added: int
    removed: int


@router.post("/tag-rules/run", response={200: RunOut, **ERRORS})
def run_rules(request: HttpRequest) -> Any:
    """Run every active rule over the workspace now (the hourly pass does this too)."""
    require(me(request), Perm.MANAGE_RULES)
    return rules.do_apply_tag_rules(ws(request).pk)


class ProfileFieldOut(Schema):
    id: int
    key: str
    label: str
    field_type: str
    choices: list[str]


class ProfileFieldIn(Schema):
    key: str = Field(min_length=1, max_length=50)
    label: str = Field(min_length=1, max_length=100)
    field_type: str = "text"
    choices: list[str] = []


@router.get("/profile-fields", response={200: list[ProfileFieldOut], **ERRORS})
def list_profile_fields(request: HttpRequest) -> Any:
    return list(ProfileField.objects.in_workspace(ws(request)))


@router.post("/profile-fields", response={201: ProfileFieldOut, **ERRORS})
def create_profile_field(request: HttpRequest, payload: ProfileFieldIn) -> Any:
    return Status(201, actions.do_create_profile_field(ws(request), me(request), **payload.dict()))
