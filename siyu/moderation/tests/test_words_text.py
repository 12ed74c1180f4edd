"""The fast word-matching text is exactly normalise-then-squeeze, for any text."""

from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.moderation.detectors import WordMatcher
from siyu.moderation.normalise import normalise, squeeze, squeeze_words, words_text

# plain characters (ASCII, full-width forms, circled digits, CJK, emoji) mixed with the
# troublesome ones: combining marks, Hangul jamo, Greek capital sigma, ⑴-style forms
ALPHABET = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),
    st.characters(min_codepoint=0x2460, max_codepoint=0x24FF), st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80),
    st.characters(min_codepoint=0x1F600, max_codepoint=0x1F64F), st.sampled_from("號微信加＋➕⑴㈠Σ\u0301\u1100\u1161éＡ̊ﾞ\u3000、。！"),
    st.characters(),
)


@given(st.text(ALPHABET, max_size=40))
@settings(max_examples=600, deadline=None)
def test_words_text_is_squeezed_normalised_text(text):
    assert words_text(text) == squeeze_words(normalise(text)) == squeeze(normalise(text)).replace("-", "").replace("_", "")


def test_evasions_reach_the_word_list_through_the_fast_path():
    matcher = WordMatcher([("竞品宝", "竞品", "competitor"), ("vx", "联系方式", "sensitive_word")])

    found = {text: [f.evidence for f in matcher.find_text(text)] for text in ("竞 品 宝 👍", "競-品-寶！", "ＶＸ：找我", "nvxx", "大家好")}

    assert found == {"竞 品 宝 👍": ["竞品宝"], "競-品-寶！": [], "ＶＸ：找我": ["vx"], "nvxx": [], "大家好": []}
