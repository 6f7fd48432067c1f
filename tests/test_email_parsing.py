import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from integrations.email_parsing import (
    AMOUNT_RE,
    analyze_document,
    decode_inbound,
    parse_inbound,
    parse_payment_email,
    tr_word,
)

FIXTURES = Path(__file__).parent / "fixtures" / "emails"
IST = ZoneInfo("Europe/Istanbul")


def load(name: str):
    path = FIXTURES / name
    headers_path = path.with_name(path.stem + ".headers.json")
    headers = (
        json.loads(headers_path.read_text())
        if headers_path.exists()
        else {"Content-Type": "message/rfc822"}
    )
    return decode_inbound(path.read_bytes(), headers)


@pytest.mark.parametrize(
    ("name", "source", "amount", "payer", "reference", "paid_at"),
    [
        ("vakifbank_dekont_windows1254.eml", "email", 125000, "MEHMET ÖZTÜRK", "REG-42",
         datetime(2025, 3, 12, 14, 35, tzinfo=IST)),
        ("ziraat_havale_iso88599.eml", "email", 250050, "Ayşe Işıl Yılmaz",
         "Topluluk kahvaltısı 2 kişi", datetime(2025, 3, 13, 9, 14, tzinfo=IST)),
        ("enpara_sendgrid_iso88599.form", "sendgrid", 25050, "İSMAİL IŞIK", "REG-7",
         datetime(2025, 3, 14, 18, 20, tzinfo=IST)),
        ("garanti_sms_mailgun.form", "mailgun", 125000, "AHMET YILMAZ", "REG-15",
         datetime(2025, 3, 15, 11, 42, tzinfo=IST)),
        ("akbank_html_windows1254.eml", "email", 75000, "Zeynep Şahin", "REG-108",
         datetime(2025, 3, 16, 20, 5, tzinfo=IST)),
    ],
)  # fmt: skip
def test_fixture_mails(name, source, amount, payer, reference, paid_at):
    message = load(name)
    parsed = parse_inbound(message)
    assert message.source == source
    assert parsed is not None
    assert parsed.amount_minor == amount and parsed.currency == "TRY"
    assert parsed.payer_name == payer
    assert parsed.reference == reference
    assert parsed.paid_at == paid_at
    assert 0.5 <= parsed.confidence <= 1
    assert "TR33 0006" not in parsed.raw_excerpt and "TR12 0001" not in parsed.raw_excerpt


def test_legacy_charsets_are_decoded_not_mangled():
    vakif = load("vakifbank_dekont_windows1254.eml")
    ziraat = load("ziraat_havale_iso88599.eml")
    enpara = load("enpara_sendgrid_iso88599.form")
    assert "İŞLEM TUTARI" in vakif.text and "ALICI AD SOYAD" in vakif.text
    assert vakif.subject == "Fwd: Hesabınıza para girişi"
    assert "Gönderen : Ayşe Işıl Yılmaz" in ziraat.text
    assert "İSMAİL IŞIK" in enpara.text and "\ufffd" not in enpara.text
    assert enpara.message_id == "<enpara-99812@enpara.com>"
    assert enpara.subject == "Hesap hareketi – Gelen"


def test_stable_id_follows_message_id():
    assert (
        load("garanti_sms_mailgun.form").stable_id() == load("garanti_sms_mailgun.form").stable_id()
    )
    assert (
        load("garanti_sms_mailgun.form").stable_id()
        != load("akbank_html_windows1254.eml").stable_id()
    )


@pytest.mark.parametrize("name", ["newsletter_no_payment.eml", "giden_transfer_windows1254.eml"])
def test_fixture_mails_without_an_incoming_payment(name):
    assert parse_inbound(load(name)) is None


@pytest.mark.parametrize(
    ("snippet", "minor"),
    [
        ("1.250,00 TL", 125000),
        ("₺1.250,00", 125000),
        ("TL 1.250,00", 125000),
        ("1250 TL", 125000),
        ("1.250 TL", 125000),
        ("250,50 TRY", 25050),
        ("1.250,00TL", 125000),
        ("12.345.678,90 TL", 1234567890),
        ("0,50 TL", 50),
        ("1,250.00 TRY", 125000),
        ("250.00 TRY", 25000),
        ("TRY 250.00", 25000),
        ("₺250.00", 25000),
        ("12.50 TL", 1250),
        ("1,250 TL", 125000),
    ],
)
def test_amount_formats(snippet, minor):
    parsed = parse_payment_email(f"Hesabınıza havale geldi. Tutar: {snippet} teşekkürler")
    assert parsed is not None and parsed.amount_minor == minor


@pytest.mark.parametrize(
    "snippet",
    [
        "0532 123 45 67 TL",  # a phone number
        "TR12 0006 4000 0011 2345 6789 01 TL",  # an IBAN fragment before TL
        "hesap no 12345678 TL",  # too many plain digits: an account number
        "TL 12345678",
        "1.250,00 TLX",
    ],
)
def test_amount_regex_refuses(snippet):
    assert parse_payment_email(f"Hesabınıza havale geldi: {snippet}") is None


def test_contracts_regex_shape_still_matches():
    match = AMOUNT_RE.search("İŞLEM TUTARI 1.234,56 TL")
    assert match and match.group("int") == "1.234,56" and match.group("cur") == "TL"


def test_balance_is_not_the_amount():
    parsed = parse_payment_email(
        "Hesabiniza 250,00 TL tutarinda EFT gelmistir. Kullanilabilir bakiye: 9.000,00 TL"
    )
    assert parsed.amount_minor == 25000


def test_alici_is_never_the_payer():
    text = "Hesabınıza EFT gelmiştir.\nALICI AD SOYAD : TOPLULUK DERNEĞİ\nTUTAR : 100,00 TL"
    # Only the recipient is named: undecided unless the recipient is known to be us.
    assert parse_payment_email(text) is None
    parsed = parse_payment_email(text, holders=("Topluluk Derneği",))
    assert parsed is not None and parsed.payer_name is None
    assert parsed.confidence < 0.7


def test_forwarded_header_is_not_a_payer():
    parsed = parse_payment_email(
        "Gönderen: Ziraat Bankası <bilgi@ziraatbank.com.tr>\n\n"
        "Hesabınıza 300,00 TL havale gelmiştir. Açıklama : Kayıt REG-9"
    )
    assert parsed.payer_name is None and parsed.reference == "REG-9"


def test_sms_without_turkish_letters():
    parsed = parse_payment_email(
        "HESABINIZA 05.04.2025 TARIHINDE AYSE KAYA TARAFINDAN 500,00 TL TUTARINDA "
        "HAVALE YAPILMISTIR. ACIKLAMA: REG 31"
    )
    assert parsed.amount_minor == 50000
    assert parsed.payer_name == "AYSE KAYA"
    assert parsed.reference == "REG-31"
    assert parsed.paid_at == datetime(2025, 4, 5, tzinfo=IST)


def test_gonderen_variants_use_explicit_turkish_classes():
    pattern = tr_word("gonderen")
    import re

    for word in ("GÖNDEREN", "Gönderen", "GONDEREN", "gönderen"):
        assert re.fullmatch(pattern, word)
    assert re.fullmatch(tr_word("aciklama"), "AÇIKLAMA")
    assert re.fullmatch(tr_word("aciklama"), "Açıklama")


def test_not_a_payment_at_all():
    assert parse_payment_email("Toplantı notları ektedir. Bilet fiyatı 250 TL.") is None
    assert parse_payment_email("Ödeme hatırlatması: lütfen IBAN'a gönderin.") is None


def test_decode_refuses_unknown_bodies():
    with pytest.raises(ValueError):
        decode_inbound(b"\x89PNG...", {"Content-Type": "image/png"})


def test_mailgun_urlencoded_form_with_turkish_utf8_names_decodes():
    """A Mailgun forward is urlencoded UTF-8; Turkish letters must not break decoding
    (parse_qsl on bytes raised UnicodeEncodeError on 'Ö' and failed the ingest)."""
    import json as _json
    from urllib.parse import urlencode

    from integrations.email_parsing import decode_inbound, parse_inbound

    form = {
        "recipient": "odemeler@mg.topluluk.org",
        "sender": "hazine@topluluk.org",
        "from": "Hazine <hazine@topluluk.org>",
        "subject": "Fwd: Gelen havale — Ödeme",
        "body-plain": "Gelen Transfer, ZÖHREHAN DURAN, 250,00 TL hesabınıza geçmiştir.",
        "message-headers": _json.dumps([["Message-Id", "<mg-1@mail>"]]),
        "timestamp": "1",
        "token": "t",
        "signature": "s",
    }
    body = urlencode(form).encode("ascii")
    message = decode_inbound(
        body, {"Content-Type": "application/x-www-form-urlencoded"}, source="mailgun"
    )
    assert "ZÖHREHAN DURAN" in message.text
    assert message.subject == "Fwd: Gelen havale — Ödeme"
    parsed = parse_inbound(message)
    assert parsed is not None and parsed.amount_minor == 25000
    assert parsed.payer_name and "DURAN" in parsed.payer_name.upper()


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    "text",
    [
        "MEHMET ÖZTÜRK'ün hesabına 250,00 TL havale gönderilmiştir. Açıklama: REG-4",
        "Hesabınızdan FAST işlemi yapılmıştır.\nAlıcı: AYŞE KAYA\nTutar: 250,00 TL\nAçıklama: 4",
        "İşlem Türü: Giden EFT\nAlıcı: AYŞE KAYA\nTutar: 250,00 TL",
        "You sent TRY 250.00 to Ayse Kaya. Reference: REG-4",
        "Ayşe Kaya'ya ₺250,00 gönderdin. Açıklama: REG-4",
    ],
)
def test_outgoing_notices_are_never_payments(text):
    assert parse_payment_email(text) is None
    assert analyze_document(text, None, subject=None).kind == "outgoing_transfer"


@pytest.mark.parametrize(
    "text",
    [
        "500 TL'ye varan bonus fırsatı! Hesabınıza 100 TL chip-para yüklenecek.",
        "5.000 TL'ye kadar FAST transferleriniz ücretsiz! Kampanya 31.03.2025'e kadar.",
        "Earn up to 250.00 TRY cashback when you receive money. Unsubscribe",
    ],
)
def test_marketing_with_amounts_is_classified_not_paid(text):
    analysis = analyze_document(text, None, subject="Kampanya")
    assert analysis.kind == "marketing" and analysis.payments == []


@pytest.mark.parametrize(
    ("text", "payer"),
    [
        ("CAN AYDIN'dan hesabınıza 250,00 TL havale gelmiştir.", "CAN AYDIN"),
        ("Deniz Koç'tan 250,00 TL hesabınıza geçmiştir.", "Deniz Koç"),
        (
            "Gönderen / Sender : ELİF DEMİR\nTutar / Amount : 250,00 TL\nİşlem: Gelen FAST",
            "ELİF DEMİR",
        ),
        ("Hesabınıza FAST gelmiştir.\nGönderen Kişi: Emre Kılıç\nTutar: 250,00 TL", "Emre Kılıç"),
        ("GÖKHAN AĞAOĞLU sana ₺250,00 gönderdi.", "GÖKHAN AĞAOĞLU"),
        ("You have received ₺250.00 from Umit Aksoy.", "Umit Aksoy"),
        ("KEREM DOĞAN\n250,00 TL\nGelen FAST - hesabınıza geçmiştir", "KEREM DOĞAN"),
    ],
)
def test_payer_name_shapes(text, payer):
    parsed = parse_payment_email(text)
    assert parsed is not None and parsed.payer_name == payer and parsed.amount_minor == 25000


def test_column_table_amount_split_across_cells_and_lines():
    html = (
        "<p>Hesabınıza EFT gelmiştir.</p><table><tr><th>Gönderen</th><th>Tutar</th>"
        "<th>Açıklama</th></tr><tr><td>IŞIL YILDIZ</td><td>250,00 TL</td><td>REG-12</td></tr>"
        "</table>"
    )
    parsed = parse_payment_email("", html=html)
    assert (parsed.payer_name, parsed.amount_minor, parsed.reference) == (
        "IŞIL YILDIZ",
        25000,
        "REG-12",
    )
    split = parse_payment_email(
        "Hesabınıza havale gelmiştir.\nGönderen: SELİN ARSLAN\nTutar:\n250,00\nTL"
    )
    assert split.amount_minor == 25000 and split.currency == "TRY"


def test_text_and_html_disagreeing_is_disputed():
    text = "Hesabınıza EFT gelmiştir.\nGönderen: BERK AYDEMİR\nTutar: 25,00 TL"
    html = "<p>Hesabınıza EFT gelmiştir.</p><p>Gönderen: BERK AYDEMİR</p><p>Tutar: 250,00 TL</p>"
    parsed = parse_payment_email(text, html=html)
    assert parsed.disputed and parsed.amount_minor == 25000


def test_a_statement_gives_each_incoming_payment_and_no_outgoing_one():
    analysis = analyze_document(
        "22.03.2025 Gelen Transfer, İREM GÜNEŞ, 250,00 TL, Açıklama: REG-1\n"
        "22.03.2025 Giden Transfer, ELEKTRİK FATURASI, -480,00 TL\n"
        "22.03.2025 Gelen Transfer, HAKAN ÖZ, 1.250,00 TL, Açıklama: REG – 2\n",
        None,
        subject="Günlük hesap özeti",
    )
    assert analysis.kind == "statement"
    assert [(p.payer_name, p.amount_minor, p.reference) for p in analysis.payments] == [
        ("İREM GÜNEŞ", 25000, "REG-1"),
        ("HAKAN ÖZ", 125000, "REG-2"),
    ]


@pytest.mark.parametrize("ref", ["REG-7", "REG–7", "REG — 7", "reg 7", "REG/7", "REG‑007", "REG_7"])
def test_refs_with_any_dash_or_spacing(ref):
    parsed = parse_payment_email(
        f"Hesabınıza havale gelmiştir.\nGönderen: AYŞE KAYA\nTutar: 250,00 TL\nAçıklama: {ref}"
    )
    assert parsed.reference == "REG-7"


def test_transfer_key_is_the_bank_number_else_payer_amount_date_ref():
    base = (
        "Hesabınıza havale gelmiştir.\nGönderen: AYŞE KAYA\nTutar: 250,00 TL\n"
        "Açıklama: REG-7\nTarih: 01.04.2025\n"
    )
    with_number = parse_payment_email(base + "Dekont No: 2025-0099\n")
    forwarded = parse_payment_email("Fwd:\n> " + base.replace("\n", "\n> ") + "Dekont No: 20250099")
    assert with_number.transfer_key == forwarded.transfer_key == "txn:20250099"
    assert (
        parse_payment_email(base).transfer_key
        == parse_payment_email("İletilen:\n" + base).transfer_key
    )
    assert (
        parse_payment_email(base).transfer_key
        != parse_payment_email(base.replace("REG-7", "REG-8")).transfer_key
    )


def test_a_sentence_with_gelen_and_an_amount_is_not_a_statement_line():
    text = "Hesabınıza gelen her EFT için 5 TL iade! Detaylar şubelerimizde."
    assert analyze_document(text, None, subject="Duyuru").payments == []


def test_a_movement_line_takes_the_labelled_sender():
    parsed = parse_payment_email(
        "Gönderen: AYŞE KAYA\nGelen Havale Tutarı: 250,00 TL\nAçıklama: REG-7\n"
    )
    assert parsed is not None and parsed.payer_name == "AYŞE KAYA" and parsed.reference == "REG-7"


@pytest.mark.parametrize("charset", ["base64", "idna", "rot13", "no-such-charset", "utf\x00"])
def test_a_hostile_declared_charset_falls_back_instead_of_failing(charset):
    from integrations.email_parsing import decode_bytes

    assert decode_bytes("Gönderen".encode(), charset) == "Gönderen"
