"""Detectors and policy (pure): the shipped corpora, evasions, QR images."""

import io
from pathlib import Path

import pytest
import segno

from siyu.moderation.detectors import DetectorConfig, WordMatcher, detect
from siyu.moderation.normalise import normalise, squeeze, to_digits
from siyu.moderation.policy import Escalation, Verdict, decide
from siyu.moderation.qr import decode_qr

DATA = Path(__file__).parent / "data"


def normal_chat() -> list[str]:
    return [line for line in (DATA / "normal_chat.txt").read_text("utf-8").splitlines() if line.strip()]


def adverts() -> list[tuple[str, str]]:
    rows = (DATA / "ads.txt").read_text("utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in rows if line.strip() and not line.startswith("#")]  # type: ignore[misc]


def qr_png(payload: str) -> bytes:
    buf = io.BytesIO()
    segno.make(payload, error="m").save(buf, kind="png", scale=8, border=4)
    return buf.getvalue()


def test_normal_chatter_has_zero_false_positives():
    # given the shipped corpus of ordinary group chat (sizes, prices, order numbers, dates)
    messages = normal_chat()
    assert len(messages) >= 300
    # when every message is checked, then none is flagged
    flagged = [(m, detect(m)) for m in messages if detect(m)]
    assert flagged == []


@pytest.mark.parametrize(("expected", "text"), adverts())
def test_every_advert_and_evasion_is_caught(expected, text):
    assert expected in {f.detector for f in detect(text)}
    assert decide(detect(text)).verdict != Verdict.ALLOW


def test_evasions_normalise_to_the_plain_form():
    assert normalise("ＶＸ號") == "vx号"
    assert squeeze(normalise("微 . 信-號 lily")) == "微信-号lily"
    assert to_digits(normalise("①③⑧ 一三八")) == "138 138"


def test_matrix_e2e_adverts_are_removals_and_chat_is_allowed():
    assert decide(detect("加 V 信：abc_123")).as_dict() == {"verdict": "remove", "reasons": [{"detector": "wechat_id", "evidence": "abc_123"}]}
    assert decide(detect("有需要联系 １３８１２３４５６７８")).as_dict() == {
        "verdict": "remove", "reasons": [{"detector": "phone", "evidence": "138****5678"}]}
    assert decide(detect("今天的直播几点开始？")).as_dict() == {"verdict": "allow", "reasons": []}


def test_word_lists_match_through_evasion_with_ascii_boundaries():
    config = DetectorConfig(WordMatcher([("竞品宝", "竞品", "competitor"), ("vx", "暗语", "sensitive_word")]))
    assert [(f.detector, f.evidence, f.rule) for f in detect("去 竞-品-寶 买更便宜", config)] == [("competitor", "竞品宝", "竞品")]
    assert detect("novxbox", config) == []


def test_cards_red_packets_flooding_and_own_domains():
    config = DetectorConfig(own_domains=("acme.com",), flood_count=3)
    assert [f.detector for f in detect("", config, msgtype="miniprogram", data={"appid": "wx123"})] == ["mini_program"]
    assert detect("领券 https://shop.acme.com/a", config) == []
    assert [f.detector for f in detect("https://evil.cn/a", config)] == ["url"]
    assert [f.detector for f in detect("进群抢红包啦", config)] == ["red_packet"]
    assert [f.detector for f in detect("好", config, repeats=2)] == ["flood"]
    assert detect("好", config, repeats=1) == []


def test_qr_codes_in_images_are_decoded_and_own_codes_allowed():
    foreign = decode_qr(qr_png("https://u.wechat.com/EXYZ"))
    assert foreign == ["https://u.wechat.com/EXYZ"]
    config = DetectorConfig(own_qr_prefixes=("https://work.weixin.qq.com/ca/acme",))
    assert [(f.detector, f.evidence) for f in detect("", config, qr_payloads=foreign)] == [("qr_code", "https://u.wechat.com/EXYZ")]
    assert detect("", config, qr_payloads=decode_qr(qr_png("https://work.weixin.qq.com/ca/acme123"))) == []
    assert decode_qr(b"not an image") == []


def test_escalation_raises_repeat_offenders_and_exempts_staff():
    findings = detect("看看 www.example.com")
    assert decide(findings).verdict == Verdict.DELETE
    assert decide(findings, prior_strikes=1, escalation=Escalation()).verdict == Verdict.REMOVE
    assert decide(findings, prior_strikes=2, escalation=Escalation()).verdict == Verdict.BLACKLIST
    assert decide(findings, exempt=True).verdict == Verdict.ALLOW
