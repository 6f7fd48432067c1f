import pytest

from hub.members import (
    identity_email,
    name_key,
    normalize_email,
    normalize_name,
    normalize_phone,
    turkish_lower,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ayse.Kaya@Gmail.COM ", "ayse.kaya@gmail.com"),
        ("Ayşe Kaya <AYSE@Example.com.tr>", "ayse@example.com.tr"),
        ("mailto:Info@Dernek.ORG", "info@dernek.org"),
        ("İSMAİL@ÖRNEK.COM", "ismail@örnek.com"),  # no combining dot after i
        ("ismail@xn--rnek-4qa.com", "ismail@örnek.com"),  # punycode == Unicode spelling
        ("user+tag@fastmail.com", "user+tag@fastmail.com"),  # plus kept at this level
        ("", None),
        (None, None),
        ("not an email", None),
        ("a@b", None),
        ("two@@signs.com", None),
        ("a b@c.com", None),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A.Y.S.E+events@GoogleMail.com", "ayse@gmail.com"),
        ("ayse.kaya+pyistanbul@gmail.com", "aysekaya@gmail.com"),
        ("ayse.kaya+x@outlook.com", "ayse.kaya@outlook.com"),  # only Gmail drops dots
        ("ayse.kaya+x@dernek.org", "ayse.kaya+x@dernek.org"),  # unknown domain: untouched
        ("junk", None),
    ],
)
def test_identity_email(raw, expected):
    assert identity_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "0532 123 45 67",
        "+90 532 123 4567",
        "5321234567",
        "(0532) 123-4567",
        "00905321234567",
        "+90 (532) 123 45 67",
        "0 532 123 45 67",
        905321234567,
    ],
)
def test_normalize_phone_turkish_styles(raw):
    assert normalize_phone(raw) == "+905321234567"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0212 555 12 12", "+902125551212"),  # Istanbul landline
        ("+44 20 7946 0958", "+442079460958"),
        ("020 7946 0958", None),  # a UK number without +44 is not Turkish
        ("abc", None),
        ("12", None),
        ("", None),
        (None, None),
        ("123456", None),
        ("TR33 0006 1005 1978 6457 8413 26", None),  # an IBAN is not a phone
        ("call me maybe 0532", None),
    ],
)
def test_normalize_phone_other_and_garbage(raw, expected):
    assert normalize_phone(raw) == expected


def test_normalize_phone_other_region():
    assert normalize_phone("020 7946 0958", default_region="GB") == "+442079460958"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  İSMAİL   IŞIK ", "ismail ışık"),
        ("Işıl Yıldız", "ışıl yıldız"),
        ("ÇAĞLA ŞAHİN", "çağla şahin"),
        ("İstanbul", "istanbul"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_name_turkish_casefold(raw, expected):
    value = normalize_name(raw)
    assert value == expected
    if value:
        assert "\u0307" not in value  # "İ".lower() would leave a combining dot


def test_turkish_lower_differs_from_str_lower():
    assert "İ".lower() != "i"
    assert turkish_lower("İI") == "iı"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ayşe Yılmaz", "AYSE YILMAZ"),
        ("İSMAİL IŞIK", "ismail isik"),
        ("Çağla  Şahin-Öztürk", "CAGLA SAHIN OZTURK"),
    ],
)
def test_name_key_ignores_turkish_letters_and_case(a, b):
    assert name_key(a) == name_key(b)


def test_name_key_word_order():
    assert name_key("YILMAZ AYSE") != name_key("Ayşe Yılmaz")
    assert name_key("YILMAZ AYSE", sort_tokens=True) == name_key("Ayşe Yılmaz", sort_tokens=True)
    assert name_key("  ") is None
