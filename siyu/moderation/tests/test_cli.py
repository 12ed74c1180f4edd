"""``siyu moderation check`` (the typer sub-app the lead wires into ``siyu``)."""

import json

import pytest
from typer.testing import CliRunner

from siyu.moderation.cli import moderation_app
from siyu.moderation.tests.test_detectors import qr_png

pytestmark = pytest.mark.django_db


def run(*args):
    result = CliRunner().invoke(moderation_app, ["check", *args, "--json"])
    return result.exit_code, json.loads(result.output)


def test_check_flags_contacts_links_evasions_and_leaves_chat_alone():
    assert run("加 V 信：abc_123") == (0, {"verdict": "remove", "reasons": [{"detector": "wechat_id", "evidence": "abc_123"}]})
    assert run("１３８１２３４５６７８")[1]["reasons"] == [{"detector": "phone", "evidence": "138****5678"}]
    assert run("戳 t.cn/A6x8yZ 领券")[1]["verdict"] == "delete"
    assert run("这件衣服有M码吗？") == (0, {"verdict": "allow", "reasons": []})


def test_check_an_image_with_a_foreign_qr_code(tmp_path):
    image = tmp_path / "poster.png"
    image.write_bytes(qr_png("https://u.wechat.com/EXYZ"))
    assert run("--image", str(image)) == (0, {"verdict": "remove", "reasons": [{"detector": "qr_code", "evidence": "https://u.wechat.com/EXYZ"}]})
