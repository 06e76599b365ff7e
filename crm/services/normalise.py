"""Normalising what users type: emails, phones, domains, names, money."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

from crm.services.errors import CRMError

# Ids are 32-bit integers in PostgreSQL (and at most 64-bit in SQLite): a larger number typed or
# carried by a button names no record, and must not reach the database as a query value.
MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    """Whether ``value`` can be the id of a stored record."""
    return 0 < value <= MAX_ID

_EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\".]{2,}$")
_DOMAIN = re.compile(r"^(?=.{3,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

# Free-mail providers: their domain says nothing about which company a person belongs to.
FREE_MAIL_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.es",
        "yahoo.it",
        "ymail.com",
        "rocketmail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.it",
        "hotmail.es",
        "live.com",
        "live.co.uk",
        "live.fr",
        "live.de",
        "msn.com",
        "outlook.com",
        "outlook.fr",
        "outlook.de",
        "aol.com",
        "aim.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.com",
        "email.com",
        "protonmail.com",
        "proton.me",
        "pm.me",
        "tutanota.com",
        "tuta.io",
        "zoho.com",
        "zohomail.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "inbox.ru",
        "list.ru",
        "bk.ru",
        "rambler.ru",
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "sohu.com",
        "naver.com",
        "daum.net",
        "hanmail.net",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "libero.it",
        "virgilio.it",
        "tiscali.it",
        "alice.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "onet.pl",
        "interia.pl",
        "bluewin.ch",
        "hushmail.com",
        "fastmail.com",
        "fastmail.fm",
        "rediffmail.com",
        "uol.com.br",
        "bol.com.br",
        "terra.com.br",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "bellsouth.net",
        "cox.net",
        "charter.net",
        "earthlink.net",
        "btinternet.com",
        "sky.com",
        "virginmedia.com",
        "ntlworld.com",
        "shaw.ca",
        "rogers.com",
        "sympatico.ca",
        "bigpond.com",
        "optusnet.com.au",
        "xtra.co.nz",
    ]
)


def normalise_email(value: str) -> str:
    email = value.strip().strip("<>").strip()
    if email.lower().startswith("mailto:"):
        email = email[7:]
    email = email.lower()
    # 254: the longest address SMTP carries (RFC 5321's path limit less its brackets).
    if len(email) > 254 or not _EMAIL.match(email):
        raise CRMError(f"{value!r} is not an email address.", hint="Use the form name@example.com.")
    return email


def is_email(value: str) -> bool:
    try:
        normalise_email(value)
    except CRMError:
        return False
    return True


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def normalise_domain(value: str) -> str:
    domain = value.strip().lower()
    domain = re.sub(r"^[a-z]+://", "", domain).split("/", 1)[0].split(":", 1)[0]
    domain = domain.removeprefix("www.").lstrip("@").rstrip(".")
    if "@" in domain:
        domain = email_domain(domain)
    if not _DOMAIN.match(domain):
        raise CRMError(f"{value!r} is not a domain name.", hint="Use the form example.com.")
    return domain


def looks_like_domain(value: str) -> bool:
    try:
        normalise_domain(value)
    except CRMError:
        return False
    return "." in value and " " not in value.strip()


def company_domain(email: str) -> str | None:
    """The company domain an address tells us about, or None for free-mail providers."""
    domain = email_domain(email)
    return None if domain in FREE_MAIL_DOMAINS else domain


# Mailboxes that belong to a system or a list, not a person: notifications, delivery
# reports, list software (RFC 2142 names, and what Mailman, Majordomo and Google Groups use).
_ROLE_LOCAL_RE = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|postmaster|mailer[-_.]?daemon|listserv|majordomo|"
    r"mailman|bounces?|notifications?|owner-.+|.+-(?:request|bounces|owner))(?:[-+.].*)?$",
    re.IGNORECASE,
)


def role_address_reason(address: str) -> str | None:
    """Why ``address`` is a system or list mailbox (``noreply@``, ``postmaster@``,
    ``users-request@``, ...) rather than a person's, or None."""
    local = (address or "").rsplit("@", 1)[0]
    return f"sent from {address}, a system or list address" if _ROLE_LOCAL_RE.match(local) else None


def normalise_phone(value: str) -> str:
    raw = value.strip()
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("00"):
        digits = digits[2:]
        raw = "+" + raw[2:]
    if not 7 <= len(digits) <= 15:
        raise CRMError(
            f"{value!r} is not a phone number.", hint="Use digits, e.g. +44 20 7946 0958."
        )
    return ("+" if raw.startswith("+") else "") + digits


def normalise_slack_id(value: str) -> str:
    slack_id = value.strip().strip("<>@").split("|", 1)[0].upper()
    if not re.fullmatch(r"[UW][A-Z0-9]{2,31}", slack_id):
        raise CRMError(
            f"{value!r} is not a Slack user id.", hint="Slack user ids look like U024BE7LH."
        )
    return slack_id


def name_key(value: str) -> str:
    """Case- and accent-insensitive key for names: 'Zoë  Müller' -> 'zoe muller'."""
    folded = unicodedata.normalize("NFKD", value)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(folded.casefold().split())


def clean_text(
    value: str | None, *, field: str, max_length: int, required: bool = False
) -> str | None:
    if value is None:
        if required:
            raise CRMError(f"The {field} is missing.")
        return None
    text = " ".join(value.split()) if max_length <= 500 else value.strip()
    if required and not text:
        raise CRMError(f"The {field} is empty.", hint=f"Give a {field}.")
    if len(text) > max_length:
        raise CRMError(f"The {field} is longer than {max_length} characters.")
    return text or None


def parse_money(value: object, *, field: str = "amount") -> Decimal:
    if isinstance(value, Decimal):
        amount = value
    else:
        text = str(value).strip().replace(",", "").replace("_", "")
        text = re.sub(r"^[$€£¥]|[$€£¥]$", "", text).strip()
        multiplier = Decimal(1)
        if text[-1:].lower() in ("k", "m"):
            multiplier = Decimal(1000) if text[-1].lower() == "k" else Decimal(1_000_000)
            text = text[:-1]
        try:
            amount = Decimal(text) * multiplier
        except InvalidOperation:
            raise CRMError(
                f"{value!r} is not an {field}.", hint="Use a number such as 12000 or 12.5k."
            ) from None
    if not amount.is_finite() or amount < 0:
        raise CRMError(f"The {field} must be zero or more.")
    if amount >= Decimal(10) ** 16:
        raise CRMError(f"The {field} {value} is too large.")
    return amount.quantize(Decimal("0.01"))


def is_currency_code(code: str) -> bool:
    """Whether ``code`` is a currency of ISO 4217 (pycountry keeps the list up to date)."""
    import pycountry  # loaded on first use: most commands never handle an amount

    return pycountry.currencies.get(alpha_3=code) is not None


def normalise_currency(value: str | None, default: str) -> str:
    currency = (value or default).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency) or not is_currency_code(currency):
        raise CRMError(
            f"{value or default!r} is not an ISO 4217 currency code.",
            hint="Use a code such as USD, EUR, GBP or JPY.",
        )
    return currency
