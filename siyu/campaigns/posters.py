"""Fission posters (裂变海报): the campaign's template with the sharer's own QR.

A poster = background + main title + benefit outline + trust endorsement + urgency line +
the sharer's avatar and name + a QR that carries their invite code
(``<base>/c/<live code>?i=<invite code>``). Rendered on demand and cached under
``MEDIA_ROOT/posters/`` by a hash of everything drawn, so a changed title or a new
background makes a new file and an unchanged poster is never drawn twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from functools import lru_cache
from pathlib import Path

import segno
from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

from siyu.campaigns.models import Campaign, Participant
from siyu.core.errors import ValidationFailed

WIDTH, HEIGHT = 750, 1334
QR_SIZE = 260
RENDER_VERSION = "1"
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
)


class FontMissing(ValidationFailed):
    code = "cjk_font_missing"


def font_path() -> str:
    """The CJK font posters use: ``SIYU_CJK_FONT`` or Debian's fonts-noto-cjk."""
    for candidate in (os.environ.get("SIYU_CJK_FONT", ""), *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise FontMissing(
        "no CJK font for posters: install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk) "
        "or point SIYU_CJK_FONT at a .ttf/.otf/.ttc with Chinese glyphs"
    )


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


def invite_url(base_url: str, campaign: Campaign, participant: Participant) -> str:
    if campaign.live_code is None:
        raise ValidationFailed("the campaign has no live code for invitees to enter through", code="campaign_without_live_code")
    return f"{base_url.rstrip('/')}/c/{campaign.live_code.code}?i={participant.invite_code}"


def _background_image(background: str) -> Image.Image:
    if background:
        path = Path(settings.MEDIA_ROOT) / background
        if path.is_file():
            image = Image.open(path).convert("RGB")
            scale = max(WIDTH / image.width, HEIGHT / image.height)
            image = image.resize((round(image.width * scale), round(image.height * scale)))
            left, top = (image.width - WIDTH) // 2, (image.height - HEIGHT) // 2
            return image.crop((left, top, left + WIDTH, top + HEIGHT))
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    for y in range(HEIGHT):  # warm red-to-orange gradient: the colours of a deal
        t = y / HEIGHT
        draw.line([(0, y), (WIDTH, y)], fill=(int(214 + 30 * t), int(48 + 100 * t), int(49 + 20 * t)))
    return image


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for char in paragraph:
            if draw.textlength(line + char, font=font) > width and line:
                lines.append(line)
                line = char
            else:
                line += char
        lines.append(line)
    return lines


def _avatar(name: str, avatar_path: str, size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size - 1, size - 1), fill=255)
    if avatar_path and Path(avatar_path).is_file():
        face = Image.open(avatar_path).convert("RGB").resize((size, size))
    else:
        face = Image.new("RGB", (size, size), (255, 196, 0))
        draw = ImageDraw.Draw(face)
        initial = (name or "?")[0]
        font = _font(size // 2)
        box = draw.textbbox((0, 0), initial, font=font)
        draw.text(((size - (box[2] - box[0])) / 2 - box[0], (size - (box[3] - box[1])) / 2 - box[1]), initial, font=font, fill=(120, 30, 30))
    out = Image.new("RGBA", (size, size))
    out.paste(face, (0, 0), mask)
    return out


def _qr(url: str, size: int) -> Image.Image:
    """The QR at a whole number of pixels per module with the standard 4-module quiet
    zone, centred on a white square of ``size``: resizing a rendered QR to an arbitrary
    size makes modules of uneven width, which some scanners (and OpenCV) misread."""
    code = segno.make(url, error="m", micro=False)
    modules = code.symbol_size(scale=1, border=4)[0]
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=max(1, size // modules), border=4)
    buffer.seek(0)
    rendered = Image.open(buffer).convert("RGB")
    out = Image.new("RGB", (size, size), "white")
    out.paste(rendered, ((size - rendered.width) // 2, (size - rendered.height) // 2))
    return out


def _avatar_path(participant: Participant) -> str:
    path = str((participant.contact.profile or {}).get("avatar", ""))
    return str(Path(settings.MEDIA_ROOT) / path) if path else ""


def poster_key(campaign: Campaign, participant: Participant, url: str) -> str:
    """Hash of everything a poster shows: the cache key."""
    background = Path(settings.MEDIA_ROOT) / campaign.background if campaign.background else None
    avatar = _avatar_path(participant)
    parts = {
        "v": RENDER_VERSION, "title": campaign.title or campaign.name, "benefits": campaign.benefits,
        "endorsement": campaign.endorsement, "urgency": campaign.urgency, "url": url, "name": participant.contact.name,
        "background": [campaign.background, background.stat().st_mtime if background and background.is_file() else None],
        "avatar": [avatar, Path(avatar).stat().st_mtime if avatar and Path(avatar).is_file() else None],
    }
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:32]


@lru_cache(maxsize=16)
def _template(background: str, background_mtime: float | None, title: str, benefits: str, endorsement: str, urgency: str) -> Image.Image:
    """Everything a campaign's posters share, drawn once per content (the per-sharer
    part is only the avatar, name and QR)."""
    image = _background_image(background)
    draw = ImageDraw.Draw(image)
    white, cream = (255, 255, 255), (255, 240, 200)
    y = 90
    for line in _wrap(draw, title, _font(56), WIDTH - 100):
        draw.text((WIDTH / 2, y), line, font=_font(56), fill=white, anchor="ma")
        y += 76
    y += 20
    panel_top = y
    benefit_lines = [f"● {b.strip()}" for b in benefits.splitlines() if b.strip()]
    body = [line for b in benefit_lines for line in _wrap(draw, b, _font(34), WIDTH - 180)]
    draw.rounded_rectangle((50, panel_top, WIDTH - 50, panel_top + 60 + 52 * max(1, len(body))), radius=24, fill=(255, 255, 255))
    y = panel_top + 30
    for line in body:
        draw.text((90, y), line, font=_font(34), fill=(90, 30, 20))
        y += 52
    y = panel_top + 90 + 52 * max(1, len(body))
    if endorsement:
        draw.text((WIDTH / 2, y), endorsement, font=_font(28), fill=cream, anchor="ma")
        y += 60
    if urgency:
        draw.rounded_rectangle((120, y, WIDTH - 120, y + 70), radius=35, fill=(255, 214, 0))
        draw.text((WIDTH / 2, y + 35), urgency, font=_font(32), fill=(200, 20, 20), anchor="mm")
    bottom = HEIGHT - QR_SIZE - 110
    draw.rounded_rectangle((30, bottom - 30, WIDTH - 30, HEIGHT - 40), radius=24, fill=white)
    draw.text((60, bottom + 190), "邀请你一起参加", font=_font(26), fill=(120, 120, 120))
    draw.text((WIDTH - QR_SIZE / 2 - 60, bottom + QR_SIZE + 8), "长按识别二维码", font=_font(22), fill=(120, 120, 120), anchor="ma")
    return image


def draw_poster(campaign: Campaign, participant: Participant, url: str) -> Image.Image:
    background = Path(settings.MEDIA_ROOT) / campaign.background if campaign.background else None
    mtime = background.stat().st_mtime if background is not None and background.is_file() else None
    image = _template(campaign.background, mtime, campaign.title or campaign.name, campaign.benefits, campaign.endorsement,
                      campaign.urgency).copy()
    draw = ImageDraw.Draw(image)
    bottom = HEIGHT - QR_SIZE - 110
    image.paste(_qr(url, QR_SIZE), (WIDTH - QR_SIZE - 60, bottom))
    avatar = _avatar(participant.contact.name, _avatar_path(participant), 110)
    image.paste(avatar, (60, bottom + 10), avatar)
    draw.text((60, bottom + 140), participant.contact.name[:10], font=_font(34), fill=(40, 40, 40))
    return image


def render_poster(campaign: Campaign, participant: Participant, base_url: str) -> tuple[Path, bool]:
    """The participant's poster as a PNG file, drawn only if not cached; returns
    (path, drawn_now)."""
    if participant.campaign_id != campaign.pk:
        raise ValidationFailed("the participant is not in this campaign", code="participant_not_in_campaign")
    url = invite_url(base_url, campaign, participant)
    folder = Path(settings.MEDIA_ROOT) / "posters"
    path = folder / f"{poster_key(campaign, participant, url)}.png"
    if path.is_file():
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    image = draw_poster(campaign, participant, url)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    image.save(tmp, format="PNG", compress_level=3)
    os.replace(tmp, path)  # atomic: a concurrent reader sees no half-written poster
    return path, True
