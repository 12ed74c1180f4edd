"""Content of a message: material validation and personalisation (个性化变量).

A material's text may use ``{name}``, ``{group}``, ``{coupon}``, ``{staff}``, ``{city}``
and ``{workspace}``; ``{{`` and ``}}`` are literal braces. An unknown variable is refused
when the material is saved, so a send never fails half-way on a typo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from siyu.communities.models import Group
from siyu.contacts.models import Contact
from siyu.outreach.errors import InvalidMaterial, UnknownVariable
from siyu.outreach.models import Material, MaterialKind

__all__ = ["VARIABLES", "bulk_values", "find_variables", "render", "render_text", "validate_content"]

#: the variables a text may use, with what they become
VARIABLES: dict[str, str] = {
    "name": "the contact's name (大家 in a group post)",
    "group": "the group's name",
    "coupon": "the code of the contact's newest unused coupon",
    "staff": "the contact's owner (or the group's owner)",
    "city": "the contact's city",
    "workspace": "the brand's name",
}

_VARIABLE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")

#: which fields each kind needs in ``data``, and which of them may hold variables
_REQUIRED: dict[str, tuple[str, ...]] = {
    MaterialKind.TEXT: (),
    MaterialKind.IMAGE: (),
    MaterialKind.LINK: ("title", "url"),
    MaterialKind.MINIPROGRAM: ("appid", "page", "title"),
}
_ALLOWED: dict[str, tuple[str, ...]] = {
    MaterialKind.TEXT: (),
    MaterialKind.IMAGE: ("url", "file"),
    MaterialKind.LINK: ("title", "desc", "url", "cover"),
    MaterialKind.MINIPROGRAM: ("appid", "page", "title", "cover"),
}
_PERSONALISED_FIELDS = ("title", "desc")


def find_variables(text: str) -> list[str]:
    """Variables used in ``text``, in order of first use."""
    found: list[str] = []
    for match in _VARIABLE.finditer(text):
        name = match.group(1)
        if name is not None and name not in found:
            found.append(name)
    return found


def validate_content(kind: str, text: str, data: Mapping[str, Any] | None, *, where: str = "") -> tuple[dict[str, Any], list[str]]:
    """Check a material (or inline content) and answer (clean data, variables used).
    Raises :class:`InvalidMaterial` or :class:`UnknownVariable` naming the field."""
    prefix = f"{where}." if where else ""
    if kind not in MaterialKind.values:
        raise InvalidMaterial(f"{prefix}kind: unknown material kind {kind!r}")
    raw = dict(data or {})
    extra = sorted(set(raw) - set(_ALLOWED[kind]))
    if extra:
        raise InvalidMaterial(f"{prefix}data: {kind} material does not take {', '.join(extra)}")
    clean = {key: str(value).strip() for key, value in raw.items() if value not in (None, "")}
    for key in _REQUIRED[kind]:
        if not clean.get(key):
            raise InvalidMaterial(f"{prefix}data.{key}: a {kind} material needs {key}")
    if kind == MaterialKind.TEXT and not text.strip():
        raise InvalidMaterial(f"{prefix}text: a text material needs text")
    if kind == MaterialKind.IMAGE and not (clean.get("url") or clean.get("file")):
        raise InvalidMaterial(f"{prefix}data.url: an image material needs a url or an uploaded file")
    for key in ("url", "cover"):
        if key in clean and not clean[key].startswith(("http://", "https://", "/")):
            raise InvalidMaterial(f"{prefix}data.{key}: must be an http(s) address")
    used: list[str] = []
    for field, value in [("text", text)] + [(f"data.{k}", clean.get(k, "")) for k in _PERSONALISED_FIELDS]:
        for name in find_variables(value):
            if name not in VARIABLES:
                known = ", ".join("{" + v + "}" for v in VARIABLES)
                raise UnknownVariable(f"{prefix}{field}: unknown variable {{{name}}} (known: {known})", details={"variable": name})
            if name not in used:
                used.append(name)
    return clean, used


def _values(contact: Contact | None, group: Group | None) -> dict[str, str]:
    from siyu.commerce.models import Coupon, CouponStatus
    from siyu.core.models import Workspace

    workspace_id = contact.workspace_id if contact is not None else group.workspace_id if group is not None else None
    values = {"name": contact.name if contact is not None else "大家", "group": group.name if group is not None else "", "city": "", "staff": "", "coupon": ""}
    if contact is not None:
        values["city"] = contact.city
        owner = contact.owner
        values["staff"] = owner.display_name if owner is not None else ""
    elif group is not None and group.owner is not None:
        values["staff"] = group.owner.display_name
    if workspace_id is not None:
        values["workspace"] = Workspace.objects.filter(pk=workspace_id).values_list("name", flat=True).first() or ""
    if contact is not None:
        values["coupon"] = _coupon(contact, Coupon, CouponStatus)
    return values


def bulk_values(workspace_id: int, contact_ids: list[int], variables: set[str]) -> dict[int, dict[str, str]]:
    """Variable values for many contacts in a few queries (only the variables used)."""
    from siyu.commerce.models import Coupon, CouponStatus
    from siyu.core.models import Workspace

    workspace_name = Workspace.objects.filter(pk=workspace_id).values_list("name", flat=True).first() or ""
    out: dict[int, dict[str, str]] = {}
    for start in range(0, len(contact_ids), 5000):
        chunk = contact_ids[start:start + 5000]
        for pk, name, city, staff in Contact.objects.filter(workspace_id=workspace_id, pk__in=chunk).values_list(
            "pk", "name", "city", "owner__display_name"
        ):
            out[pk] = {"name": name, "city": city, "staff": staff or "", "group": "", "coupon": "", "workspace": workspace_name}
        if "coupon" in variables:
            rows = Coupon.objects.filter(workspace_id=workspace_id, contact_id__in=chunk, status=CouponStatus.ISSUED).order_by(
                "contact_id", "issued_at", "id"
            ).values_list("contact_id", "code")
            for contact_id, code in rows:  # ordered oldest first: the newest wins
                if contact_id in out:
                    out[contact_id]["coupon"] = code
    return out


def _coupon(contact: Contact, coupon_model: Any, status: Any) -> str:
    code = (
        coupon_model.objects.filter(contact=contact, status=status.ISSUED).order_by("-issued_at", "-id").values_list("code", flat=True).first()
    )
    return str(code or "")


def render_text(text: str, values: Mapping[str, str]) -> str:
    """Fill the variables of ``text`` (a variable without a value becomes empty)."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return str(values.get(match.group(1), ""))

    return _VARIABLE.sub(fill, text)


def render(
    material_or_dict: Material | Mapping[str, Any],
    *,
    contact: Contact | None = None,
    group: Group | None = None,
    values: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The payload for the channel adapter: ``{"kind", "text", ...}`` with variables
    filled for this contact or group. A link adds ``link`` (title, desc, url, cover), an
    image ``image`` (url or file), a mini-program card ``miniprogram``; ``text`` is always
    there (channels that show only text get a readable fallback). ``values`` replaces
    the look-up of variable values (the bulk planner loads them for many contacts at
    once)."""
    if isinstance(material_or_dict, Material):
        kind, text, data = material_or_dict.kind, material_or_dict.text, dict(material_or_dict.data)
        material_id: int | None = material_or_dict.pk
    else:
        source = dict(material_or_dict)
        kind, text = str(source.get("kind", MaterialKind.TEXT)), str(source.get("text", ""))
        data = {k: v for k, v in source.items() if k in _ALLOWED.get(kind, ())}
        data |= dict(source.get(kind, {})) if isinstance(source.get(kind), Mapping) else {}
        data, _used = validate_content(kind, text, data)
        material_id = source.get("material_id")
    values = values if values is not None else _values(contact, group)
    payload: dict[str, Any] = {"kind": kind, "text": render_text(text, values).strip()}
    if material_id:
        payload["material_id"] = material_id
    if kind == MaterialKind.LINK:
        link = {k: render_text(str(data.get(k, "")), values) if k in _PERSONALISED_FIELDS else str(data.get(k, "")) for k in _ALLOWED[kind]}
        payload["link"] = link
        payload["text"] = payload["text"] or f"{link['title']} {link['url']}".strip()
    elif kind == MaterialKind.IMAGE:
        payload["image"] = {k: str(data[k]) for k in ("url", "file") if data.get(k)}
        payload["text"] = payload["text"] or "[image]"
    elif kind == MaterialKind.MINIPROGRAM:
        card = {k: str(data.get(k, "")) for k in _ALLOWED[kind]}
        card["title"] = render_text(card["title"], values)
        payload["miniprogram"] = card
        payload["text"] = payload["text"] or card["title"]
    return payload
