"""Encoding, segments and cost of SMS texts (integrations.sms_encoding): Turkish texts with
the Turkish single shift table, the GSM-7 and UCS-2 boundaries, and properties checked on
generated texts, including agreement with the emulator's own independent count."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sandbox.netgsm import charset
from integrations.sms_encoding import (
    CAPACITY,
    GSM7_BASIC,
    GSM7_EXTENSION,
    TURKISH_SHIFT,
    Encoding,
    choose_encoding,
    plan,
    unit_lengths,
)

GSM_CHARS = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))
TR_CHARS = GSM_CHARS + "ĞİŞçğış"
OTHER = "Жлюб😀🎉مرحبا中文€"


@pytest.mark.parametrize(
    "text, encoding, units",
    [
        ("Çağrı ŞİŞLİ", Encoding.TR, 17),  # Ç 1; ğ ı Ş İ Ş İ 2 each
        ("Merhaba Dünya", Encoding.GSM7, 13),  # ü is in the default alphabet
        ("ÇÖÜöü", Encoding.GSM7, 5),  # all in the default alphabet
        ("Ödemeniz alındı: 1.250,00 TL", Encoding.TR, 30),
        ("Öğrenci bileti {A}", Encoding.TR, 21),  # ğ and { } take two
        ("price [10€]", Encoding.GSM7, 14),
        ("Kayıt onaylandı 🎉", Encoding.UCS2, 18),  # the emoji is a surrogate pair
        ("Привет", Encoding.UCS2, 6),
        ("", Encoding.GSM7, 0),
    ],
)
def test_known_texts(text, encoding, units):
    found = plan(text)
    assert (found.encoding, found.units) == (encoding, units)
    assert found.segments == 1 and found.cost_units == 1


@pytest.mark.parametrize(
    "text, segments",
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 152 + "€", 1),  # 154 septets: one message (160)
        ("a" * 152 + "€" + "a" * 154, 3),  # the € would straddle parts 1 and 2
        ("ı" * 77 + "a", 1),  # 155 septets: fits one Turkish message
        ("ı" * 78, 2),  # 156
        ("ş" * 74 + "a" * 74 + "b", 2),  # 149 + 75: two parts
        ("a" * 148 + "ş" + "a" * 148, 3),  # 298 = 2 x 149, but ş is never split
        ("Ж" * 70, 1),
        ("Ж" * 71, 2),
        ("Ж" * 134, 2),
        ("Ж" * 135, 3),
        ("😀" * 35, 1),  # 70 code units
        ("😀" * 36, 2),  # 33 pairs a part: a pair is never split
        ("😀" * 67, 3),
    ],
)
def test_segment_boundaries(text, segments):
    assert plan(text).segments == segments


def test_cost_is_segments_times_recipients():
    assert plan("ş" * 100, recipients=3).cost_units == 2 * 3


def test_gsm_text_is_never_sent_as_turkish_or_unicode():
    assert choose_encoding("Istanbul {20:00} ~ $5 | @home") is Encoding.GSM7


def test_character_outside_the_alphabet_is_refused_for_that_encoding():
    with pytest.raises(ValueError):
        unit_lengths("ş", Encoding.GSM7)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(TR_CHARS + OTHER), max_size=700))
def test_agrees_with_the_emulators_own_count(text):
    encoding, _, groups = charset.encode(text, turkish=True)
    found = plan(text)
    assert str(found.encoding) == encoding
    assert found.segments == charset.segment_count(groups, encoding)
    assert found.units == sum(len(g) for g in groups)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(TR_CHARS + OTHER), max_size=700))
def test_segments_hold_the_units(text):
    found = plan(text)
    single, part = CAPACITY[found.encoding]
    if found.units <= single:
        assert found.segments == 1
    else:
        assert found.segments >= math.ceil(found.units / part)
        # never more than one extra part per 1-unit slack a split can waste
        assert found.segments <= math.ceil(found.units / (part - 1))


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(TR_CHARS + OTHER), max_size=400),
    st.sampled_from(TR_CHARS + OTHER),
)
def test_appending_never_lowers_the_count(text, extra):
    before, after = plan(text), plan(text + extra)
    if before.encoding == after.encoding:
        assert after.segments >= before.segments


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=400))
def test_gsm_only_texts_stay_gsm(text):
    assert choose_encoding(text) is Encoding.GSM7


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(TR_CHARS), min_size=1, max_size=400))
def test_turkish_texts_are_never_unicode(text):
    found = plan(text)
    assert found.encoding in (Encoding.GSM7, Encoding.TR)
    if set(text) & set("ĞİŞçğış"):
        assert found.encoding is Encoding.TR
    assert set(text) <= GSM7_BASIC | TURKISH_SHIFT
