"""Turkish and English for the native pages: language negotiation, messages, dates, money.

Turkish is the default (the hub's people are in Turkey); English when the browser
prefers it (``Accept-Language`` with q-values) or ``?lang=en`` asks for it. The tables
are small on purpose (two languages, a few dozen strings) and need no extra library.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from hub.models import CURRENCY_EXPONENTS

LANGUAGES = ("tr", "en")
DEFAULT_LANGUAGE = "tr"


def negotiate(accept_language: str | None, override: str | None = None) -> str:
    """The best of :data:`LANGUAGES` for an ``Accept-Language`` header.

    ``tr-TR,tr;q=0.9,en;q=0.8`` -> ``tr``; ``en-GB,en;q=0.9`` -> ``en``; ``de, en;q=0.5``
    -> ``en``; ``*`` or nothing usable -> ``tr``. A q of 0 excludes a language. On equal
    q the earlier entry wins. ``override`` (``?lang=``) wins when it names a language.
    """
    if override and override.strip().lower()[:2] in LANGUAGES:
        return override.strip().lower()[:2]
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "").split(",")[:32]):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not (0.0 < q <= 1.0):
            continue
        primary = tag.split("-", 1)[0]
        language = DEFAULT_LANGUAGE if primary == "*" else primary
        if language not in LANGUAGES:
            continue
        candidate = (q, -position, language)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else DEFAULT_LANGUAGE


# ---------------------------------------------------------------------------- consent

CONSENT_TEXTS = {
    "tr": (
        "KVKK Aydınlatma Metni'ni okudum; adımın, e-posta adresimin ve telefon numaramın "
        "bu etkinliğe kaydım, biletim ve etkinlikle ilgili bildirimler için işlenmesine "
        "açık rıza veriyorum."
    ),
    "en": (
        "I have read the KVKK (Turkish data protection law) notice and consent to my "
        "name, e-mail address and phone number being processed for my registration to "
        "this event, my ticket and notices about the event."
    ),
}


def consent_version(language: str) -> str:
    """A short fingerprint of the consent text shown (kept in the form, so the text the
    person saw is the one stored, even if the text is edited between render and post)."""
    return hashlib.sha256(CONSENT_TEXTS[language].encode("utf-8")).hexdigest()[:12]


def consent_text_for(version: str | None, language: str) -> str:
    """The exact consent text a form showed: by its fingerprint, else the language's."""
    for lang, text in CONSENT_TEXTS.items():
        if version and consent_version(lang) == version:
            return text
    return CONSENT_TEXTS[language]


# ---------------------------------------------------------------------------- messages

MESSAGES: dict[str, dict[str, str]] = {
    "tr": {
        "register": "Kayıt ol",
        "register_pay": "Ödemeye geç",
        "full_name": "Ad soyad",
        "email": "E-posta",
        "phone": "Telefon",
        "phone_hint": "Türkiye numarası (0532 123 45 67) ya da + ile uluslararası numara.",
        "consent": "Açık rıza",
        "required": "zorunlu",
        "seats_left": "{n} yer kaldı",
        "seats_left_one": "Son 1 yer kaldı",
        "sold_out": "Tükendi",
        "sold_out_long": "Bu etkinlikte yer kalmadı.",
        "cancelled": "Bu etkinlik iptal edildi.",
        "ended": "Bu etkinlik sona erdi.",
        "free": "Ücretsiz",
        "when": "Ne zaman",
        "where": "Nerede",
        "price": "Ücret",
        "online": "Çevrim içi",
        "errors_title": "Formda düzeltilmesi gereken alanlar var:",
        "err_full_name": "Adınızı ve soyadınızı yazın.",
        "err_full_name_long": "Ad soyad en fazla 120 karakter olabilir.",
        "err_email": "Geçerli bir e-posta adresi yazın (ornek@alan.com).",
        "err_phone": "Geçerli bir telefon numarası yazın: 0532 123 45 67 ya da +44 20 7946 0958.",
        "err_consent": "Kayıt için açık rıza kutusunu işaretlemeniz gerekiyor.",
        "err_ref": "Referans kodu en fazla 64 harf, rakam, - ya da _ olabilir.",
        "err_idempotency_key": "Form süresi doldu; sayfayı yenileyip tekrar deneyin.",
        "err_event": "Etkinlik bulunamadı.",
        "already_registered": (
            "Bu etkinliğe {date} tarihinde {platform} üzerinden zaten kayıtlısınız."
        ),
        "order_in_progress": "Bu etkinlik için tamamlanmamış bir kaydınız var.",
        "rate_limited": "Çok fazla deneme yapıldı. {seconds} saniye sonra tekrar deneyin.",
        "unavailable": "Kayıt sistemi şu an yanıt vermiyor. Biraz sonra tekrar deneyin.",
        "too_large": "Gönderilen form çok büyük.",
        "malformed": "Gönderilen form okunamadı; sayfayı yenileyip tekrar deneyin.",
        "not_found_title": "Sayfa bulunamadı",
        "not_found": "Aradığınız etkinlik ya da sipariş bulunamadı.",
        "order": "Sipariş",
        "order_status": "Durum",
        "timeline": "Geçmiş",
        "pay_now": "Ödemeyi tamamla",
        "back_to_event": "Etkinlik sayfasına dön",
        "status_held": "Yer ayrıldı",
        "status_awaiting_payment": "Ödeme bekleniyor",
        "status_paid": "Ödendi",
        "status_confirmed": "Kaydınız onaylandı",
        "status_pending": "Kaydınız alındı, onay bekliyor",
        "status_expired": "Süresi doldu",
        "status_failed": "Başarısız",
        "status_refunded": "İade edildi",
        "status_cancelled": "İptal edildi",
        "ev_created": "Sipariş oluşturuldu",
        "ev_held": "Yer ayrıldı",
        "ev_redirected": "Ödeme sayfasına yönlendirildi",
        "ev_paid": "Ödeme alındı",
        "ev_confirmed": "Yer kesinleşti",
        "ev_pending_approval": "Kayıt organizatör onayı bekliyor",
        "ev_approved": "Kayıt onaylandı, yeriniz hazır",
        "ev_seat_retaken": "Süre dolduktan sonra boş yer bulundu",
        "ev_no_seat": "Süre dolduktan sonra ödeme geldi; yer kalmadı",
        "ev_expired": "Süre doldu, yer serbest bırakıldı",
        "ev_refunded": "Ödeme iade edildi",
        "ev_refund_failed": "İade denemesi başarısız; tekrar denenecek",
        "ev_failed": "Ödeme sayfası açılamadı",
        "ev_session_expiry_failed": "Ödeme oturumu kapatılamadı; kendiliğinden kapanacak",
        "ev_paid_after_expiry": "Ödeme, süre dolarken tamamlandı",
        "ev_amount_mismatch": "Ödenen tutar sipariş tutarıyla uyuşmuyor; inceleniyor",
        "confirmed_title": "Kaydınız tamam",
        "late_refund": (
            "Ödemeniz süre dolduktan sonra geldi ve yer kalmamıştı; ödemeniz iade edildi."
        ),
        "skip": "Forma geç",
        "registered_as": "Kayıtlı kişi",
    },
    "en": {
        "register": "Register",
        "register_pay": "Continue to payment",
        "full_name": "Full name",
        "email": "E-mail",
        "phone": "Phone",
        "phone_hint": "A Turkish number (0532 123 45 67) or an international one with +.",
        "consent": "Consent",
        "required": "required",
        "seats_left": "{n} seats left",
        "seats_left_one": "Last seat left",
        "sold_out": "Sold out",
        "sold_out_long": "There are no seats left for this event.",
        "cancelled": "This event has been cancelled.",
        "ended": "This event has ended.",
        "free": "Free",
        "when": "When",
        "where": "Where",
        "price": "Price",
        "online": "Online",
        "errors_title": "Please correct these fields:",
        "err_full_name": "Enter your full name.",
        "err_full_name_long": "The full name can be at most 120 characters.",
        "err_email": "Enter a valid e-mail address (name@example.com).",
        "err_phone": "Enter a valid phone number: 0532 123 45 67 or +44 20 7946 0958.",
        "err_consent": "You need to tick the consent box to register.",
        "err_ref": "The reference code is at most 64 letters, digits, - or _.",
        "err_idempotency_key": "The form has expired; reload the page and try again.",
        "err_event": "No such event.",
        "already_registered": "You are already registered for this event via {platform} on {date}.",
        "order_in_progress": "You have an unfinished registration for this event.",
        "rate_limited": "Too many attempts. Try again in {seconds} seconds.",
        "unavailable": "Registration is unavailable right now. Please try again shortly.",
        "too_large": "The form you sent is too large.",
        "malformed": "The form could not be read; reload the page and try again.",
        "not_found_title": "Page not found",
        "not_found": "The event or order you are looking for does not exist.",
        "order": "Order",
        "order_status": "Status",
        "timeline": "Timeline",
        "pay_now": "Complete the payment",
        "back_to_event": "Back to the event page",
        "status_held": "Seat held",
        "status_awaiting_payment": "Awaiting payment",
        "status_paid": "Paid",
        "status_confirmed": "Your registration is confirmed",
        "status_pending": "Registered, waiting for approval",
        "status_expired": "Expired",
        "status_failed": "Failed",
        "status_refunded": "Refunded",
        "status_cancelled": "Cancelled",
        "ev_created": "Order created",
        "ev_held": "Seat held",
        "ev_redirected": "Redirected to payment",
        "ev_paid": "Payment received",
        "ev_confirmed": "Seat confirmed",
        "ev_pending_approval": "Registration waits for the organizer's approval",
        "ev_approved": "Registration approved, your seat is ready",
        "ev_seat_retaken": "A free seat was found after the hold expired",
        "ev_no_seat": "Payment arrived after the hold expired; no seat was left",
        "ev_expired": "Expired, seat released",
        "ev_refunded": "Payment refunded",
        "ev_refund_failed": "Refund attempt failed; it will be retried",
        "ev_failed": "The payment page could not be opened",
        "ev_session_expiry_failed": "The payment session could not be closed; it ends by itself",
        "ev_paid_after_expiry": "The payment completed as the hold expired",
        "ev_amount_mismatch": "The amount paid differs from the order; under review",
        "confirmed_title": "You are registered",
        "late_refund": (
            "Your payment arrived after your hold expired and no seat was left; "
            "it has been refunded."
        ),
        "skip": "Skip to the form",
        "registered_as": "Registered",
    },
}

PLATFORM_NAMES = {"native": "", "meetup": "Meetup", "eventbrite": "Eventbrite", "luma": "Luma"}
_NATIVE_CHANNEL = {"tr": "bu sayfa", "en": "this page"}


def t(language: str, key: str, **values: object) -> str:
    """The message ``key`` in ``language`` (English, then the key, when missing)."""
    table = MESSAGES.get(language) or MESSAGES[DEFAULT_LANGUAGE]
    template = table.get(key) or MESSAGES["en"].get(key) or key
    return template.format(**values) if values else template


def platform_name(platform: str, language: str) -> str:
    return PLATFORM_NAMES.get(platform) or _NATIVE_CHANNEL.get(language, platform)


# ---------------------------------------------------------------------------- dates

_MONTHS = {
    "tr": ("Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos",
           "Eylül", "Ekim", "Kasım", "Aralık"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip
_MONTHS_SHORT = {
    "tr": ("Oca", "Şub", "Mar", "Nis", "May", "Haz", "Tem", "Ağu", "Eyl", "Eki", "Kas", "Ara"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
_WEEKDAYS = {
    "tr": ("Pazartesi", "Salı", "Çarşamba", "Perşembe", "Cuma", "Cumartesi", "Pazar"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def local_time(when: datetime, zone: str) -> datetime:
    return when.astimezone(ZoneInfo(zone))


def format_datetime(when: datetime, zone: str, language: str) -> str:
    """``Perşembe, 3 Aralık 2026, 19:00`` / ``Thursday, 3 December 2026, 19:00`` in the
    event's time zone."""
    local = local_time(when, zone)
    lang = language if language in _MONTHS else DEFAULT_LANGUAGE
    weekday = _WEEKDAYS[lang][local.weekday()]
    month = _MONTHS[lang][local.month - 1]
    return f"{weekday}, {local.day} {month} {local.year}, {local:%H:%M}"


def format_time(when: datetime, zone: str) -> str:
    return f"{local_time(when, zone):%H:%M}"


def format_short_date(when: datetime, zone: str, language: str) -> str:
    """``3 Ara`` / ``3 Dec`` (the day a person registered, in the event's zone)."""
    local = local_time(when, zone)
    lang = language if language in _MONTHS_SHORT else DEFAULT_LANGUAGE
    return f"{local.day} {_MONTHS_SHORT[lang][local.month - 1]}"


# ---------------------------------------------------------------------------- money

_SYMBOLS = {"TRY": "₺", "EUR": "€", "USD": "$", "GBP": "£"}


def major_amount(amount_minor: int, currency: str) -> str:
    """``25050, TRY`` -> ``250.50`` (schema.org's price: a dot, no grouping)."""
    exponent = CURRENCY_EXPONENTS.get(currency.upper(), 2)
    if exponent == 0:
        return str(amount_minor)
    whole, frac = divmod(abs(amount_minor), 10**exponent)
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{whole}.{frac:0{exponent}d}"


def format_money(amount_minor: int, currency: str, language: str) -> str:
    """``₺1.250,00`` (tr) / ``₺1,250.00`` (en); the ISO code when there is no symbol."""
    if amount_minor == 0:
        return t(language, "free")
    plain = major_amount(amount_minor, currency)
    whole, _, frac = plain.partition(".")
    groups = f"{int(whole):,}"
    if language == "tr":
        number = groups.replace(",", ".") + (f",{frac}" if frac else "")
    else:
        number = groups + (f".{frac}" if frac else "")
    symbol = _SYMBOLS.get(currency.upper())
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"
