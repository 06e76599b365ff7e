"""Multilingual word tables shared by quote, forward and signature detection.

Everything language-specific lives here so that adding a language is a matter of
adding words, not code.  Quote detection and forward detection use the *same*
header-label table: an Outlook "From:/Sent:/To:/Subject:" block means "quoted
message starts here" to the reply splitter and "this is the original sender" to
the forward finder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# --------------------------------------------------------------------------- labels
# Header-field labels as mail clients print them above a quoted or forwarded
# message.  Keys are canonical field names.
FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "from": (
        "From", "Von", "De", "De la", "Da", "Van", "Fra", "Från", "Od", "От", "Від", "Від кого",
        "Lähettäjä", "Feladó", "Gönderen", "Kimden", "Expeditor", "Expeditorul", "Šalje",
        "Pošiljatelj", "Pošiljalac", "Saatja", "Mittente", "Remetente", "Afzender", "Absender",
        "Nadawca", "Odesílatel", "Odosielateľ", "Отправитель", "Від:", "送信元", "差出人",
        "发件人", "寄件者", "寄件人", "보낸 사람", "Αποστολέας", "Από", "Sender", "Frá", "Nuo",
        "No", "Pengirim", "Người gửi", "Dari", "Lähettäjä", "מאת", "من", "จาก", "प्रेषक",
    ),
    "date": (
        "Date", "Sent", "Datum", "Dato", "Gesendet", "Envoyé", "Envoyé le", "Fecha", "Enviado",
        "Enviada", "Enviado el", "Data", "Inviato", "Verzonden", "Verstuurd", "Sendt", "Skickat",
        "Odesláno", "Odoslané", "Wysłano", "Wysłane", "Отправлено", "Дата", "Надіслано",
        "Відправлено", "Lähetetty", "Päivämäärä", "Päiväys", "Elküldve", "Dátum", "Küldve",
        "Gönderildi", "Gönderilen", "Tarih", "Trimis", "Dată", "Data trimiterii", "Poslano",
        "Poslato", "Kuupäev", "Saadetud", "日付", "送信日時", "发送时间", "日期", "發送時間",
        "寄件日期", "보낸 날짜", "Ημερομηνία", "Στάλθηκε", "Message du", "Dagsetning", "Sendt:",
        "תאריך", "נשלח", "التاريخ", "تم الإرسال", "أرسلت", "วันที่", "ส่ง", "दिनांक", "भेजा गया",
    ),
    "to": (
        "To", "An", "À", "A", "Para", "Aan", "Til", "Till", "Do", "Komu", "Кому", "Vastaanottaja",
        "Címzett", "Kime", "Către", "Destinatarul", "Destinatar", "Prima", "Primatelj", "Adresat",
        "Adresát", "送信先", "宛先", "收件人", "收件者", "받는 사람", "Προς", "Saaja", "Pour",
        "Per", "Pre", "Empfänger", "Til:", "Kam", "Kepada", "אל", "إلى", "ถึง", "प्रति",
    ),
    "cc": (
        "Cc", "CC", "Kopie", "Kopie (CC)", "Copie", "Copie à", "Kopia", "Kopi", "Kopio",
        "Másolat", "Másolatot kap", "Копия", "Копія", "Bilgi", "Dw", "DW", "Kópia", "Copia",
        "Copia a", "Kopiointi", "抄送", "副本", "참조", "Κοιν", "Bcc", "Blindkopie", "Cci",
        "עותק", "نسخة", "สำเนา",
    ),
    "subject": (
        "Subject", "Betreff", "Objet", "Sujet", "Asunto", "Oggetto", "Onderwerp", "Emne", "Ämne",
        "Temat", "Předmět", "Predmet", "Тема", "Aihe", "Tárgy", "Konu", "Subiect", "Subiectul",
        "Assunto", "Naslov", "件名", "主题", "主旨", "제목", "Θέμα", "Teema", "Efni", "Tema",
        "Perihal", "Chủ đề", "נושא", "الموضوع", "เรื่อง", "विषय",
    ),
    "reply_to": (
        "Reply-To", "Reply To", "Antwort an", "Répondre à", "Responder a", "Rispondi a",
        "Risposta", "Antwoord aan", "Svara till", "Svar til", "Odpowiedz do", "Ответить",
        "Vastausosoite",
    ),
}


def _alternation(words: Iterable[str]) -> str:
    # Longest first so "De la" wins over "De" and "Kopie (CC)" over "Kopie".
    uniq = sorted({w.rstrip(":") for w in words}, key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in uniq)


_LABEL_TO_FIELD: dict[str, str] = {}
for _field, _words in FIELD_LABELS.items():
    for _w in _words:
        _LABEL_TO_FIELD.setdefault(_w.rstrip(":").casefold(), _field)

_ALL_LABELS = _alternation(w for ws in FIELD_LABELS.values() for w in ws)

# "From: x", "*From:* x", "De : x", "送信元：x", "Von:\tx".  Single-letter labels (A:, À:)
# need a colon right after them, which the regex enforces for every label anyway.
FIELD_LINE_RE = re.compile(
    r"^[ \t]*\*{0,2}(?P<label>" + _ALL_LABELS + r")\*{0,2}[ \t\u00a0]*[:：]\*{0,2}(?P<value>.*)$",
    re.IGNORECASE,
)
# The same labels without a colon ("From "Ann" <a@x>"), as eM Client prints them under its
# "Original Message" marker; trusted only right under such a marker.
BARE_FIELD_LINE_RE = re.compile(
    r"^[ \t]*(?P<label>" + _ALL_LABELS + r")[ \t\u00a0]+(?P<value>\S.*)$", re.IGNORECASE
)
# Same labels glued inside one line (Yahoo prints the whole block on one line).
INLINE_FIELD_RE = re.compile(r"(?P<label>" + _ALL_LABELS + r")[ \t\u00a0]?[:：]", re.IGNORECASE)


def field_of(label: str) -> str | None:
    """Canonical field name for a printed label ("Betreff" -> "subject")."""
    return _LABEL_TO_FIELD.get(re.sub(r"\s+", " ", label.strip()).casefold())


# --------------------------------------------------------------------------- markers
# Separator phrases that announce a forwarded message.
FORWARD_MARKERS: tuple[str, ...] = (
    "Forwarded message", "Forwarded Message", "Begin forwarded message", "Forwarded mail",
    "Forwarded e-mail", "Forwarded email", "Message forwarded", "Forwarded by",
    "Weitergeleitete Nachricht", "Anfang der weitergeleiteten Nachricht", "Weitergeleitete E-Mail",
    "Message transféré", "Début du message réexpédié", "Début du message transféré",
    "Message transmis", "Courriel transféré",
    "Mensaje reenviado", "Inicio del mensaje reenviado", "Correo reenviado",
    "Messaggio inoltrato", "Inizio messaggio inoltrato", "Messaggio Inoltrato",
    "Mensagem encaminhada", "Mensagem reencaminhada", "Início da mensagem reencaminhada",
    "Início da mensagem encaminhada",
    "Doorgestuurd bericht", "Begin doorgestuurd bericht", "Doorgestuurde e-mail",
    "Videresendt meddelelse", "Start på videresendt besked", "Videresendt besked",
    "Videresendt melding", "Videresendt e-post",
    "Vidarebefordrat meddelande", "Vidarebefordrat mejl", "Vidarebefordrat e-postmeddelande",
    "Välitetty viesti", "Välitetty viesti alkaa", "Edelleenlähetetty viesti", "Fwd.Msg",
    "Wiadomość przesłana dalej", "Przekazana wiadomość", "Początek przekazywanej wiadomości",
    "Treść przekazanej wiadomości",
    "Přeposlaná zpráva", "Začátek přeposílané zprávy", "Preposlaná správa",
    "Začiatok preposlanej správy",
    "Proslijeđena poruka", "Započni proslijeđenu poruku", "Prosleđena poruka",
    "Posredovano sporočilo",
    "Továbbított üzenet", "Továbbított levél kezdete",
    "Mesaj redirecționat", "Mesaj redirecţionat", "Începe mesajul redirecționat",
    "Începe mesajul redirecţionat",
    "Пересылаемое сообщение", "Перенаправленное сообщение", "Начало переадресованного сообщения",
    "Пересланное сообщение", "Переслане повідомлення", "Перенаправлене повідомлення",
    "Початок листа, що пересилається", "Пересланий лист",
    "İletilen İleti", "İletilmiş Mesaj", "İleti başlangıcı", "İletilen mesaj",
    "Edastatud kiri", "Persiųstas laiškas", "Pārsūtīta ziņa",
    "メッセージを転送", "転送されたメッセージ", "転送メッセージ",
    "转发的邮件", "转发邮件", "轉寄的郵件", "轉寄郵件", "전달된 메시지",
    "Προωθημένο μήνυμα", "הודעה שהועברה", "رسالة معاد توجيهها", "Tin nhắn đã chuyển tiếp",
)
# "Original message" separators: Outlook prints them for replies *and* forwards.
ORIGINAL_MARKERS: tuple[str, ...] = (
    "Original Message", "Original message", "Ursprüngliche Nachricht", "Originalnachricht",
    "Message d'origine", "Message original", "Mensaje original", "Messaggio originale",
    "Mensagem original", "Oorspronkelijk bericht", "Origineel bericht", "Oprindelig meddelelse",
    "Opprinnelig melding", "Ursprungligt meddelande", "Alkuperäinen viesti",
    "Wiadomość oryginalna", "Oryginalna wiadomość", "Původní zpráva", "Pôvodná správa",
    "Izvorna poruka", "Eredeti üzenet", "Mesaj original", "Mesajul original",
    "Исходное сообщение", "Исходное письмо", "Оригинальное сообщение", "Початкове повідомлення",
    "Оригінальне повідомлення", "Orijinal Mesaj", "Özgün İleti", "Algne kiri", "元のメッセージ",
    "原始邮件", "原始郵件", "원본 메시지", "Αρχικό μήνυμα", "Reply message", "Původní e-mail",
)


def _marker_regex(phrases: Iterable[str]) -> re.Pattern[str]:
    # A marker line is the phrase alone, decorated with dashes/stars/underscores/colons
    # (e.g. "---------- Forwarded message ---------", "> Begin forwarded message:",
    # "*-------- Original Message --------*").  Yahoo continues with header fields on the
    # same line, so anything may follow a *dashed* marker.
    alt = _alternation(phrases)
    return re.compile(
        r"^[\s>]*[*_]*(?:[-=_~*]{2,}\s*)?(?P<phrase>" + alt + r")(?:\s*/\s*[^-\n]{1,30})?"
        r"(?:\s*[-=_~*]{2,}[*_]*(?P<rest>.*)|\s*[:：]?[*_]*\s*)$",
        re.IGNORECASE,
    )


FORWARD_MARKER_RE = _marker_regex(FORWARD_MARKERS)
ORIGINAL_MARKER_RE = _marker_regex(ORIGINAL_MARKERS)
# Lotus Notes: "---------------------- Forwarded by Jane Doe/HOU/ECT on 01/02/2001 ----"
LOTUS_FORWARD_RE = re.compile(r"^[\s>]*-{3,}\s*Forwarded by .{0,120}-{3,}\s*$", re.IGNORECASE)

# --------------------------------------------------------------------------- attribution
# Verbs of reply attribution lines: "On <date>, <who> wrote:", "Am <date> schrieb <who>:".
WROTE_VERBS: tuple[str, ...] = (
    "wrote", "writes", "has written", "schrieb", "hat geschrieben", "geschrieben",
    "a écrit", "écrit", "escribió", "ha escrito", "escrito", "ha scritto", "scrisse",
    "escreveu", "schreef", "het volgende geschreven", "skrev", "skrev følgende", "skrev följande",
    "kirjoitti", "napisał", "napisała", "napisał\\(a\\)", "napsal", "napsal\\(a\\)", "napísal",
    "napísala", "napisao", "napisala", "napisal", "je napisal", "je napisala", "írta",
    "ezt írta", "написал", "написала", "написал\\(а\\)", "написав", "написала", "пише",
    "написа", "yazdı", "şunu yazdı", "a scris", "έγραψε", "写道", "寫道", "kirjutas", "rašė",
    "rakstīja", "skrifaði", "escriu", "va escriure", "menulis", "đã viết", "כתב", "كتب",
)
_VERB_ALT = "|".join(
    sorted((v if "\\" in v else re.escape(v)).replace(r"\ ", r"\s+") for v in WROTE_VERBS)
)
# The verb, then at most a short tail (a date, "følgende", "(a)") and a colon, or nothing.
# "wrote ----" (Zoho) is also accepted.
ATTRIBUTION_RE = re.compile(
    r"(?:^|[\s,)>\"'»”])(?:" + _VERB_ALT + r")(?:\s*\(a\))?"
    r"(?P<tail>(?:[^\n:：]|\d[:：]\d){0,70})?\s*(?:[:：]|-{2,})?\s*[*_]*\s*$",
    re.IGNORECASE,
)
# The Japanese/Korean attribution puts the name first: "<who> のメッセージ:", "<who>님이 작성:".
ATTRIBUTION_ASIAN_RE = re.compile(r"(?:のメッセージ|님이 작성|님이 씀)\s*[:：]\s*$")

EMAIL_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Anything that looks like a date or a clock time: 28/10/2021, 2016-01-27, 12:46, 17.50,
# 2021, "Oct 27".  Used to tell attribution lines from ordinary sentences.
DATEISH_RE = re.compile(
    r"\d{1,4}[./-]\d{1,2}[./-]\d{2,4}|\b\d{1,2}[:.h]\d{2}\b|\b(?:19|20)\d{2}\b|"
    r"\b\d{1,2}\s*(?:年|月|日)|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d",
    re.IGNORECASE,
)
# Old Gmail: "2013/7/20 sam via Discourse Meta <info@discourse.org>" (no verb at all).
ISO_DATE_START_RE = re.compile(r"^\s*\d{4}[-/]\d{1,2}[-/]\d{1,2}\b")

# --------------------------------------------------------------------------- signatures
# "Sent from my iPhone" and friends, in many languages.  Matched against a whole line.
MOBILE_SIGNATURE_RE = re.compile(
    r"^[\s(<\[]*(?:"
    r"sent from$|"
    r"get (?:outlook|\[outlook) for |"
    r"envoyé (?:de|depuis|à partir de|avec|par) |"
    r"von meinem .{0,40}gesendet|gesendet (?:von|mit|vom|über|aus) |"
    r"diese nachricht wurde von meinem .{0,60}gesendet|"
    r"enviado (?:desde|de|con|do|pelo|a partir do|via) |"
    r"inviato (?:da|dal|con|tramite) |"
    r"verzonden (?:met|vanaf|van|via) |verstuurd (?:met|vanaf|van|via) |"
    r"(?:sendt|skickat|skickad|lähetetty|wysłane|wysłano|odesláno|odoslané|poslano|"
    r"küldve|gönderildi|trimis|отправлено|надіслано|послато) (?:fra|från|från min|med|"
    r"z|ze|zo|s|sa|iz|az|a|de pe|с|з|из|von|från mitt|mobiilista|iphonesta|"
    r"[\w-]+ (?:cihazımdan|telefonumdan|iphone'umdan))|"
    r"(?:mobiilista|iphonesta|ipadista) lähetetty|"
    r"[\w'’ -]{0,30}(?:iphone|ipad|android|blackberry|galaxy|samsung|huawei|xiaomi|"
    r"mobile|mobil|móvil|cellulare|smartphone|telefon|phone|handy)[\w'’ -]{0,20}"
    r"(?:から送信|发送|發送|에서 보냄|から送信しました)|"
    r"从我的|從我的|"
    r"(?:נשלח מ|أرسلت من |تم الإرسال من |ส่งจาก ?).{0,25}(?:iphone|ipad|android|galaxy|"
    r"samsung|outlook|mobile|נייד|جوال|هاتف|มือถือ|โทรศัพท์)|"
    r"<<sent by |\(sent from |typed on (?:my )?(?:iphone|ipad|mobile)|"
    r"from my (?:iphone|ipad|android|blackberry|mobile|phone|samsung|galaxy)|"
    r"this (?:e-?mail|message) was sent from (?:my|a) |"
    r"sent from (?:my |the )?(?:iphone|ipad|mobile|phone|android|blackberry)"
    r")",
    re.IGNORECASE,
)

# The generic English footer ("Sent from Yahoo Mail for Android", "Sent via Superhuman", "Sent with
# Proton Mail"): only when what follows names an app or device, so "Sent from the warehouse this
# morning." or "Sent on Monday, as agreed" stay text.
_SENT_GENERIC_RE = re.compile(r"^[\s(<\[]*sent (?:from|via|with|using|by|on) (?P<rest>.+)$",
                              re.IGNORECASE)
_DEVICE_WORDS = frozenset((
    "my", "mobile", "phone", "smartphone", "iphone", "ipad", "android", "tablet", "device", "app",
))
_CALENDAR_WORDS = frozenset((
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today",
    "tomorrow", "yesterday", "january", "february", "march", "april", "may", "june", "july",
    "august", "september", "october", "november", "december",
))


# The longest of those footers is well under this; longer lines are text.
_MAX_FOOTER_CHARS = 160


def is_mobile_footer(line: str) -> bool:
    """A "Sent from my iPhone"-style line, in many languages (``line`` is one cleaned line)."""
    if len(line) > _MAX_FOOTER_CHARS:
        return False
    if MOBILE_SIGNATURE_RE.match(line):
        return True
    m = _SENT_GENERIC_RE.match(line)
    if m is None or line.rstrip().endswith("?"):
        return False
    words = m.group("rest").split()
    if len(words) > 10:
        return False
    for word in words[:4]:
        bare = word.strip(".,;:!()[]<>®™").lower()
        if bare in _DEVICE_WORDS:
            return True
        if word[:1].isupper() and bare not in _CALENDAR_WORDS:
            return True  # a product name: Outlook, Yahoo Mail, Superhuman, Proton Mail
    return False


# Sign-off phrases that open a signature block ("Thanks,", "Best regards", "Grüße").
SIGN_OFFS: tuple[str, ...] = (
    "thanks", "thank you", "thanks again", "thanks in advance", "many thanks", "thx", "tks",
    "ty", "cheers", "regards", "best regards", "kind regards", "warm regards", "warmest regards",
    "best wishes", "best", "all the best", "sincerely", "sincerely yours", "yours sincerely",
    "yours truly", "yours", "respectfully", "cordially", "take care", "talk soon", "speak soon",
    "your pal", "with thanks", "with regards", "with best regards", "many thanks and regards",
    "thanks and regards", "thanks & regards", "thanks and best regards", "br", "rgds",
    "mit freundlichen grüßen", "mit freundlichen grüssen", "freundliche grüße", "beste grüße",
    "viele grüße", "liebe grüße", "grüße", "gruß", "lg", "vg", "mfg", "herzliche grüße",
    "cordialement", "bien cordialement", "bien à vous", "salutations", "merci", "amitiés",
    "atentamente", "saludos", "un saludo", "saludos cordiales", "gracias", "muchas gracias",
    "cordiali saluti", "saluti", "distinti saluti", "grazie", "un saluto",
    "atenciosamente", "cumprimentos", "abraços", "obrigado", "obrigada",
    "met vriendelijke groet", "met vriendelijke groeten", "groeten", "vriendelijke groet",
    "med vennlig hilsen", "vennlig hilsen", "med venlig hilsen", "venlig hilsen", "hilsen",
    "mvh", "med vänliga hälsningar", "vänliga hälsningar", "hälsningar", "mvh",
    "ystävällisin terveisin", "terveisin", "pozdrawiam", "z poważaniem", "s pozdravem",
    "s pozdravom", "pozdrav", "srdečně", "üdvözlettel", "tisztelettel", "saygılarımla",
    "iyi çalışmalar", "cu stimă", "cu respect", "с уважением", "спасибо", "з повагою",
    "よろしくお願いします", "よろしくお願いいたします", "谢谢", "此致", "감사합니다",
)
_SIGN_OFF_ALT = "|".join(re.escape(s).replace(r"\ ", r"\s+") for s in sorted(SIGN_OFFS, key=len,
                                                                                reverse=True))
# A whole line that is a sign-off, optionally followed by a short name on the same line:
# "Thanks,", "Regards", "Thanks, BT", "Thanks,  David Poston", "Your pal, Craig."
SIGN_OFF_LINE_RE = re.compile(
    r"^\s*(?i:" + _SIGN_OFF_ALT + r")(?i:\s+(?:so much|a lot|very much|again))?"
    r"\s*(?:[,.;:!—–-]+\s*(?P<name>[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,3})?\s*[.,]?)?\s*$"
)

# Legal boilerplate: a paragraph that contains one of these is a disclaimer.
DISCLAIMER_RE = re.compile(
    r"intended (?:solely )?(?:only )?(?:for the )?(?:use of the )?(?:addressee|recipient)|"
    r"\bconfidential(?:ity)?\b.{0,80}\b(?:privileged|intended|notice|information)|"
    r"if you (?:are not|have received) (?:the intended|this (?:e-?mail|message|communication) "
    r"in error)|received this (?:e-?mail|message|communication) (?:in error|by mistake)|"
    r"unauthori[sz]ed (?:use|review|disclosure|dissemination|copying)|"
    r"\bdisclaimer\b|please consider the environment before printing|"
    r"vertraulich|irrtümlich erhalten|nicht der richtige adressat|"
    r"confidentiel|destinataire|riservat[eo]|destinatario|confidencial|"
    r"vertrouwelijk|geadresseerde|fortrolig|konfidentiell|luottamuksellinen|poufn|"
    r"důvěrn|конфиденциал",
    re.IGNORECASE | re.DOTALL,
)

# Every branch of DISCLAIMER_RE holds one of these words (lower-case): a paragraph without any
# of them is no disclaimer, found with plain substring searches rather than the pattern.
DISCLAIMER_WORDS: tuple[str, ...] = (
    "intended", "confidential", "if you", "received this", "unauthori", "disclaimer",
    "environment", "vertraulich", "irrtümlich", "adressat", "confidentiel", "destinataire",
    "riservat", "destinatario", "confidencial", "vertrouwelijk", "geadresseerde", "fortrolig",
    "konfidentiell", "luottamuksellinen", "poufn", "důvěrn", "конфиденциал",
)


def is_disclaimer(text: str) -> bool:
    low = text.lower()
    return any(word in low for word in DISCLAIMER_WORDS) and DISCLAIMER_RE.search(text) is not None


# --------------------------------------------------------------------------- subjects
# Reply / forward prefixes written by mail clients in various languages.
REPLY_PREFIXES: tuple[str, ...] = (
    "re", "aw", "antw", "antwort", "sv", "odp", "rif", "r", "res", "resp", "ynt", "yanıt", "vá",
    "ré", "rép", "atb", "odg", "отв", "відп", "απ", "σχετ", "回复", "答复", "回覆", "返信",
    "השב", "رد", "ตอบกลับ", "회신",
)
# "VS" is a reply in Finnish but a forward in Danish/Norwegian; Outlook in the latter is
# far more common in practice, so it counts as a forward.
FORWARD_PREFIXES: tuple[str, ...] = (
    "fwd", "fw", "wg", "tr", "rv", "i", "enc", "pd", "vl", "vb", "vs", "ilt", "i̇lt", "doorst",
    "videresend", "vid", "redir", "reenv", "inoltro", "wt", "fs", "prosl", "továbbítás",
    "πρθ", "пересл", "转发", "轉寄", "転送", "העבר", "הועבר", "إعادة توجيه", "توجيه", "ส่งต่อ",
    "전달",
)
# Tags that gateways prepend and that carry no meaning for the conversation.
SUBJECT_TAGS: tuple[str, ...] = (
    "ext", "external", "external email", "external sender", "extern", "externe", "externo",
    "caution", "warning: external", "spam", "suspected spam", "possible spam", "secure",
)
_PREFIX_ALT = "|".join(
    re.escape(p) for p in sorted({p for p in REPLY_PREFIXES + FORWARD_PREFIXES if p},
                                 key=len, reverse=True)
)
_TAG_ALT = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in SUBJECT_TAGS)
SUBJECT_PREFIX_RE = re.compile(
    r"^\s*(?:"
    r"(?:" + _PREFIX_ALT + r")\.?\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]"  # Re:, Fwd[2]:, AW:
    r"|\[(?:" + _TAG_ALT + r")\]|\((?:" + _TAG_ALT + r")\)"               # [EXT], (External)
    r"|(?:" + _TAG_ALT + r")\s*[:：]"                                     # EXTERNAL:
    r")\s*",
    re.IGNORECASE,
)
FORWARD_PREFIX_RE = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)*(?:"
    + "|".join(re.escape(p) for p in sorted({p for p in FORWARD_PREFIXES if p}, key=len,
                                            reverse=True))
    + r")\.?\s*(?:\[\d+\]|\(\d+\))?\s*[:：]",
    re.IGNORECASE,
)
REPLY_PREFIX_RE = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)*(?:"
    + "|".join(re.escape(p) for p in sorted({p for p in REPLY_PREFIXES if p}, key=len,
                                            reverse=True))
    + r")\.?\s*(?:\[\d+\]|\(\d+\))?\s*[:：]",
    re.IGNORECASE,
)

# Out-of-office and auto-reply subjects.
AUTO_REPLY_SUBJECT_RE = re.compile(
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response|antwort)|"
    r"autoreply|away from (?:the )?office|on (?:vacation|holiday|leave)|"
    r"abwesenheit|automatische antwort|réponse automatique|absence du bureau|absent du bureau|"
    r"respuesta automática|fuera de la oficina|risposta automatica|fuori (?:ufficio|sede)|"
    r"resposta automática|ausente do escritório|automatisch antwoord|afwezig|"
    r"autosvar|fraværsmelding|frånvaro|automaattinen vastaus|poissa toimistolta|"
    r"automatyczna odpowiedź|poza biurem|automatická odpověď|mimo kancelář|"
    r"automatikus válasz|házon kívül|otomatik yanıt|ofis dışında|răspuns automat|"
    r"автоответ|автоматический ответ|вне офиса|автоматична відповідь|自動応答|不在|自动回复|"
    r"delivery status notification|undeliverable|mail delivery (?:failed|subsystem)",
    re.IGNORECASE,
)
