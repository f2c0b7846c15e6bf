"""What a bounce means: the rules that turn DSN fields, the wording of a notice and the headers
of an auto-reply into a kind (hard, soft, none). Every verdict names the rule that decided it, so
`tidings bounces parse` can explain itself; docs/email.md has the same rules as a table.

Precedence, first match wins:
1. a DSN `Status:` (RFC 3463 class; X.2.2 "mailbox full" is transient by definition), then the
   recipient's `Diagnostic-Code`, then what the notice says about it (as in 2.), then `Action:`;
2. the recipient's own paragraph of the notice: quoted status codes, then specific wording
   (storage full → soft, address unknown → hard, transient trouble → soft);
3. warning framing anywhere in the notice ("this is a warning only", "will retry") → soft;
4. generic wording in the recipient's paragraph, then the whole notice the same way;
5. the subject of the notice, then flufl.bounce's verdict on the layout.
The quoted original message never counts: bounce_text cuts it off before these rules run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache


class BounceKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    NONE = "none"


@dataclass(frozen=True)
class Verdict:
    kind: BounceKind
    rule: str
    status: str | None = None  # the enhanced status code the rule read, if any
    evidence: str | None = None  # (part of) the line it was read from


def worst(kinds: Iterable[BounceKind]) -> BounceKind:
    order = [BounceKind.COMPLAINT, BounceKind.HARD, BounceKind.SOFT, BounceKind.NONE]
    present = set(kinds)
    return next((k for k in order if k in present), BounceKind.NONE)


# --- status codes ----------------------------------------------------------------------------

# RFC 3463 "class.subject.detail"; the look-arounds keep IP addresses and versions out.
_STATUS = re.compile(r"(?<![\w.])([245])\.([0-7])\.(\d{1,3})(?!\.?\d)")
_FAILURE_STATUS = re.compile(r"(?<![\w.])([45])\.([0-7])\.(\d{1,3})(?!\.?\d)")
# An RFC 5321 reply code where a server's answer is quoted: at the start of a line (after
# transcript arrows), after "said:", "error", "returned '" and the like.
_REPLY_CODE = re.compile(
    r"(?:^[ \t<>#]*|[:'\"(#\[][ \t]*|\b(?:said|error|reply|returned|response|code)[ \t:]+)"
    r"([45]\d\d)(?=[ \t-]|$)",
    re.IGNORECASE | re.MULTILINE,
)


def status_of(value: object) -> str | None:
    """The first RFC 3463 code in a header value ("smtp; 5.1.1 (user unknown)" -> "5.1.1")."""
    match = _STATUS.search(str(value or ""))
    return ".".join(match.groups()) if match else None


def status_kind(status: str) -> BounceKind:
    if status.startswith("2"):
        return BounceKind.NONE
    # RFC 3463: X.2.2 (mailbox full) "should be used as a persistent transient failure",
    # whatever class the server gave it.
    if status.startswith("4") or status[1:].startswith(".2.2"):
        return BounceKind.SOFT
    return BounceKind.HARD


def _status_note(status: str) -> str:
    return f"dsn-status {status}" + (" (mailbox full: transient)" if status[1:] == ".2.2" else "")


def _line_at(text: str, index: int) -> str:
    """The line around text[index], as written (the caller flattens it)."""
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start : end if end >= 0 else len(text)].strip()


def _codes(text: str) -> Verdict | None:
    match = _FAILURE_STATUS.search(text)
    if match:
        status = ".".join(match.groups())
        kind = status_kind(status)
        return Verdict(
            kind, f"text: status {status} ({kind})", status, _line_at(text, match.start())
        )
    reply = _REPLY_CODE.search(text)
    if reply:
        code = reply.group(1)
        # 552 is "exceeded storage allocation" (RFC 5321 4.2.2): a full mailbox, like X.2.2.
        kind = BounceKind.SOFT if code.startswith("4") or code == "552" else BounceKind.HARD
        return Verdict(kind, f"text: smtp {code} ({kind})", None, _line_at(text, reply.start(1)))
    return None


# --- wording ---------------------------------------------------------------------------------


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# The recipient's storage is full: temporary by nature, whatever else the notice says.
STORAGE_FULL = _words(
    r"mail ?box (?:is )?(?:full|over ?quota)",
    r"mail ?box (?:size )?(?:limit )?exceeded",
    r"over (?:the |his |her |their )?(?:storage )?quota",
    r"quota (?:exceeded|exceeds|full)",
    r"exceeded (?:the |his |her |their )?(?:storage |disk )?(?:quota|allocation|limit)",
    r"insufficient (?:system )?storage",
    r"(?:mail ?box|inbox) (?:has )?(?:not enough|no (?:more )?) (?:space|room)",
    r"(?:user|recipient|account)(?:'s)? (?:is )?over ?quota",
    r"mail (?:file|folder) is full",
    r"postfach (?:des empf\S+ )?(?:ist )?(?:voll|\S*berf\S*llt)",  # ist voll, überfüllt
    r"speicherplatz",
    r"bo[iî]te (?:aux lettres |de r[ée]ception )?(?:est )?pleine",
    r"buz[oó]n (?:est[aá] )?lleno",
    r"casella (?:di posta )?(?:è |e )?piena",
    r"ящик\w* (?:\w+ )?переполнен|переполнен\w* (?:\w+ )?ящик",
    r"превыш\w+ (?:\w+ )?(?:квот|лимит|размер)",
)

# The address does not exist or will never accept mail.
ADDRESS_UNKNOWN = _words(
    r"user(?:name)? (?:is )?unknown",
    r"unknown (?:user|recipient|address|mailbox|local[- ]part|alias|e-?mail address)",
    r"no such (?:user|mailbox|recipient|address|account|person|local user|e-?mail)",
    r"(?:user|recipient|mailbox|address|account|e-?mail account)(?: name)? "
    r"(?:is |was )?(?:not found|not known|invalid|unavailable|not available|not listed)",
    r"(?:does not|doesn't|did not|no longer) exist",
    r"no mailbox here by that name",
    r"(?:mailbox|recipient|user|address) (?:is )?(?:disabled|deactivated|inactive|suspended)",
    r"account (?:is |has been )?(?:disabled|deactivated|inactive|suspended|closed|terminated|"
    r"expired|blocked|deleted|locked)",
    r"(?:disabled|deactivated|inactive|suspended|closed|deleted) (?:account|mailbox|user)",
    r"(?:address|recipient)(?:es)? rejected",
    r"invalid (?:recipient|mailbox|address|user|e-?mail address|destination)",
    r"bad (?:destination )?(?:mailbox|recipient) address",
    r"not a valid (?:mailbox|user|recipient|address)",
    r"(?:couldn't|could not|can't|cannot) be found",
    r"wasn't found at",
    r"not listed in (?:the )?(?:public )?(?:name & address book|domino directory|directory)",
    r"recipient name is not recognized|not recognized as a valid",
    r"unrout(?:e)?able address",
    r"address (?:is )?unknown|host (?:or domain name )?(?:not found|unknown)",
    r"domain (?:name )?(?:not found|does not exist)",
    r"no longer (?:active|available|valid|in use|accepts? (?:e-?)?mail|receives? mail)",
    r"doesn't have an? \S+ account",
    r"(?:empf\S+nger|benutzer|adresse|user)\w* (?:ist )?(?:unbekannt|ung\S+ltig|nicht gefunden)",
    r"unbekannte[rn]? (?:empf\S+nger|benutzer|adresse)",
    r"existiert nicht|wurde nicht gefunden|nicht gefunden",
    r"introuvable|n'existe pas|(?:utilisateur|destinataire|adresse) inconnue?",
    r"adresse (?:non valide|invalide)",
    r"(?:usuario|destinatario|direcci[oó]n) (?:desconocid[oa]|inexistente|no existe)",
    r"(?:utente|destinatario|indirizzo) (?:sconosciuto|inesistente)|non esiste",
    r"(?:usu[aá]rio|destinat[aá]rio|endere[cç]o) (?:desconhecido|inexistente)|n[aã]o existe",
    r"(?:gebruiker|adres) (?:is )?onbekend|bestaat niet",
    r"не существует|не найден|нет такого|неизвестн\w+ (?:адрес|получател|пользовател)",
    r"(?:ящик|аккаунт|адрес|пользователь)\w* (?:\w+ )?(?:заблокирован|отключен|удален)",
)

# Trouble on the way that will pass.
TRANSIENT = _words(
    r"temporar(?:y|ily)",
    r"try (?:again )?later",
    r"gr[ae]y-?list",
    r"rate[- ]limit",
    r"too many (?:connections|messages|concurrent)",
    r"connection (?:timed out|refused|reset)",
    r"timed out",
    r"deferred",
    r"resources? (?:temporarily )?unavailable",
    r"vor\S{1,2}bergehend",  # vorübergehend
    r"temporaire|temporal",
    r"временн",
)

# The notice says it is not final: the server is still trying.
WARNING = _words(
    r"this is a warning",
    r"warning (?:message )?only",
    r"(?:do not|don't) need to resend",
    r"no action is required",
    r"not yet been delivered|(?:hasn't|haven't|has not|have not|not) (?:been )?delivered yet",
    r"delivery (?:attempts )?will continue",
    r"will (?:continue to |keep )?(?:retry|retrying|try(?:ing)?|re-?attempt)",
    r"will be retried|still (?:being )?retried|still trying",
    r"will keep trying",
    r"noch nicht zugestellt|wird (?:weiterhin |erneut )?versucht",
    r"pas encore (?:été )?(?:remis|distribu)|nouvelle tentative",
    r"(?:будут|будет) (?:продолжен|повтор)|повторн\w+ попытк",
)

# A failure without a reason given: the message came back, so it is final.
GENERIC_FAILURE = _words(
    r"(?:could ?not|couldn't|can ?not|can't|cannot|will not|won't) be delivered",
    r"(?:wasn't|was not|were not|weren't|has not been|have not been|hasn't been) delivered",
    r"undeliver(?:able|ed)",
    r"non-?deliver(?:y|able)",
    r"delivery (?:has |to [^\n]{0,80} )?failed|failed permanently|fails permanently",
    r"permanent(?:ly)? (?:error|failure|fatal)|fatal error",
    r"(?:unable|not able|wasn't able) to deliver|could not deliver|couldn't deliver",
    r"(?:cannot|can't|could not) be reached|did not reach",
    r"returned mail|mail system error|message (?:was )?not accepted",
    r"giving up|i've given up|gave up|retry timeout exceeded|delivery time expired",
    r"rejected",
    r"unzustellbar|nicht zugestellt|konnte nicht (?:\S+ )?zugestellt",
    r"zustellung \S* ?fehlgeschlagen",
    r"non remis|n'a pas pu (?:être )?(?:remis|distribu|délivr)",
    r"échec de (?:la )?(?:remise|distribution)",
    r"impossible de (?:remettre|distribuer)|non distribuable",
    r"no (?:se )?(?:ha )?pudo (?:ser )?entregar|no (?:pudo ser )?entregado",
    r"non (?:è stato )?recapitat",
    r"не (?:может быть |было |удалось |удается )?доставл|недоставл",
    r"ошибка доставки|доставить не удалось",
)

# A delay mentioned, nothing more.
GENERIC_DELAY = _words(
    r"delay(?:ed)?",
    r"try again|retry",
    r"verz\S+gert",
    r"retard",
    r"задерж",
)

_SUBJECT_FAILURE = _words(
    r"undeliver|undelivered|failure|failed|returned mail|returned to sender|not delivered",
    r"could not|non-?deliver|error|unzustellbar|nicht zustellbar|non remis|недоставл|не доставлен",
)
_SUBJECT_DELAY = _words(r"delay|warning|still being retried|verz\S+gert|retard|задерж")


def _phrase(pattern: re.Pattern[str], kind: BounceKind, text: str) -> Verdict | None:
    match = pattern.search(text)
    if match is None:
        return None
    words = " ".join(match.group(0).lower().split())
    return Verdict(kind, f"text: '{words}' ({kind})", None, _line_at(text, match.start()))


def _specific(text: str) -> Verdict | None:
    return (
        _codes(text)
        or _phrase(STORAGE_FULL, BounceKind.SOFT, text)
        or _phrase(ADDRESS_UNKNOWN, BounceKind.HARD, text)
        or _phrase(TRANSIENT, BounceKind.SOFT, text)
    )


def _generic(text: str) -> Verdict | None:
    return _phrase(GENERIC_FAILURE, BounceKind.HARD, text) or _phrase(
        GENERIC_DELAY, BounceKind.SOFT, text
    )


@lru_cache(maxsize=8)
def _notice_level(notice: str) -> tuple[Verdict | None, Verdict | None, Verdict | None]:
    """The whole notice's verdicts, read once for all of its recipients."""
    return _phrase(WARNING, BounceKind.SOFT, notice), _specific(notice), _generic(notice)


def classify_text(
    paragraph: str, notice: str, subject: str = "", flufl: BounceKind | None = None
) -> Verdict | None:
    """A recipient's outcome from the notice: `paragraph` is the text about this recipient
    (empty when the notice does not name it), `notice` the whole notice without the original."""
    warning, specific, generic = _notice_level(notice)
    verdict = _specific(paragraph) or warning or _generic(paragraph) or specific or generic
    if verdict is not None:
        return verdict
    # The earliest word: a bounce subject quotes the original subject after its own.
    found = [m for m in (_SUBJECT_DELAY.search(subject), _SUBJECT_FAILURE.search(subject)) if m]
    if found:
        match = min(found, key=lambda m: m.start())
        kind = BounceKind.SOFT if match.re is _SUBJECT_DELAY else BounceKind.HARD
        return Verdict(kind, f"subject: '{match.group(0).lower()}' ({kind})", None, subject)
    if flufl is not None:
        return Verdict(flufl, f"flufl.bounce: {_FLUFL_WORD[flufl]} failure ({flufl})")
    return None


_FLUFL_WORD = {BounceKind.HARD: "permanent", BounceKind.SOFT: "temporary"}


def classify_dsn(
    status: str | None, action: str | None, diagnostic: str | None, paragraph: str = ""
) -> Verdict | None:
    """One recipient block of a DSN, `paragraph` being the notice's text about the recipient;
    None when neither says anything (the whole notice decides)."""
    action = (action or "").strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return Verdict(BounceKind.NONE, f"dsn-action {action}", status)
    if status and not (status.startswith("2") and action in ("failed", "delayed")):
        return Verdict(status_kind(status), _status_note(status), status)
    if diagnostic:
        found = _specific(diagnostic)
        if found is not None:
            return Verdict(found.kind, f"dsn diagnostic {found.rule}", found.status, diagnostic)
    # The notice's reason for this recipient says more than the bare Action.
    found = _specific(paragraph)
    if found is not None:
        return found
    if action == "failed":
        return Verdict(BounceKind.HARD, "dsn-action failed", status)
    if action == "delayed":
        return Verdict(BounceKind.SOFT, "dsn-action delayed", status)
    return None


# --- auto-replies and the shape of a delivery notice ------------------------------------------

_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoreply-From", "X-Mail-Autoreply")
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic|matische|matisk)?[ -]?(?:reply|response|answer|antwort|svar)"
    r"|auto:|out of (?:the )?office|ooo\b|i am (?:out|away)|away from|on vacation|vacation"
    r"|abwesenheit\w*|r[ée]ponse automatique|absent|absence|respuesta autom\w*"
    r"|fuera de la oficina|risposta automatica|fora do escrit\w*|resposta autom\w*"
    r"|afwezig\w*|автоответ\w*|автоматический ответ)",
    re.IGNORECASE,
)
_CHALLENGE_SUBJECT = re.compile(
    r"^\s*(?:\[?spam ?arrest\]?|please (?:confirm|verify)|verif(?:y|ication)|confirm (?:your|that)"
    r"|(?:sender|message) (?:verification|approval|authentication)|challenge"
    r"|authori[sz]e your (?:message|e-?mail)|awaiting (?:your )?(?:confirmation|approval))",
    re.IGNORECASE,
)
_NOTICE_SUBJECT = re.compile(
    r"^\s*(?:undeliver|undelivered|returned mail|failure notice|failed mail|mail delivery"
    r"|delivery (?:status|failure|failed|notification|report|problem|has failed|delayed|error"
    r"|warning|time expired)|non-?deliver|nondeliver|mail system error|message status"
    r"|message (?:delayed|could not|not delivered|undeliverable)|could not (?:send|deliver)"
    r"|warning: (?:could not|message)|delayed mail|mail failure|unzustellbar|nicht zustellbar"
    r"|non remis|non distribuable|[ée]chec de (?:la )?remise|не доставлено|недоставлен"
    r"|ошибка доставки|returned to sender)",
    re.IGNORECASE,
)
_DAEMON_ADDRESS = re.compile(
    r"(?:^|[<\s\"])(?:mailer-?daemon|mail-?daemon|postmaster|mdaemon|microsoftexchange[0-9a-f]{32})@",
    re.IGNORECASE,
)
_DAEMON_NAME = re.compile(
    r"mail delivery (?:system|subsystem|service)|mailer-?daemon|mail administrator"
    r"|system administrator|postmaster",
    re.IGNORECASE,
)
# The first lines MTAs write in their notices.
_NOTICE_OPENING = _words(
    r"this is the mail system at",
    r"this message was created automatically by mail delivery",
    r"this is the qmail-send program",
    r"delivery (?:has failed|is delayed) to these recipients",
    r"your message did not reach some or all",
    r"your message to \S+ couldn't be delivered",
    r"the original message was received at",
    r"automatically generated delivery status notification",
    r"sorry, we were unable to deliver your message",
    r"i'm afraid i wasn't able to deliver",
    r"the following addresses had permanent fatal errors",
)


@dataclass(frozen=True)
class Headers:
    """The header values the shape rules read, decoded to text."""

    subject: str
    sender: str  # From (and Sender), display names included
    values: dict[str, list[str]]  # lower-cased header name -> values

    def first(self, name: str) -> str:
        found = self.values.get(name.lower())
        return found[0].strip() if found else ""

    def has(self, name: str) -> bool:
        return name.lower() in self.values


def notice_shape(headers: Headers, notice: str, has_report_part: bool) -> str | None:
    """Why this message looks like a delivery notice, or None when nothing does."""
    if has_report_part:
        return "report part"
    if headers.first("X-Failed-Recipients"):
        return "X-Failed-Recipients"
    if headers.has("X-MS-Exchange-Message-Is-Ndr"):  # present, usually empty
        return "Exchange NDR header"
    if _DAEMON_ADDRESS.search(headers.sender) or _DAEMON_NAME.search(headers.sender):
        return "sender"
    if _NOTICE_SUBJECT.search(headers.subject):
        return "subject"
    if _NOTICE_OPENING.search(notice[:2000]):
        return "notice wording"
    return None


_STRUCTURAL = ("report part", "X-Failed-Recipients", "Exchange NDR header")


def not_a_bounce(headers: Headers, shape: str | None) -> str | None:
    """The rule that makes this message no bounce at all (an auto-reply, a challenge, a
    message from a person), or None. `shape` is what notice_shape found."""
    # Headers no bounce generator writes.
    for name in _AUTO_REPLY_HEADERS:
        value = headers.first(name)
        if value and value.lower() not in ("no", "false", "0"):
            return f"auto-reply header {name}: {value}"
    for name in ("Precedence", "X-Precedence"):
        value = headers.first(name)
        if value.lower().replace("-", "_") == "auto_reply":
            return f"auto-reply header {name}: {value}"
    if shape in _STRUCTURAL:
        return None
    # A postmaster's own out-of-office is still an out-of-office.
    match = _AUTO_REPLY_SUBJECT.search(headers.subject)
    if match:
        return f"auto-reply subject '{' '.join(match.group(0).lower().split())}'"
    if shape is not None:
        return None
    # Bounces carry Auto-Submitted too (RFC 3834), and a bounce's subject quotes the original
    # subject: both count only when nothing else says "delivery notice".
    match = _CHALLENGE_SUBJECT.search(headers.subject)
    if match:
        return f"challenge-response subject '{' '.join(match.group(0).lower().split())}'"
    value = headers.first("Auto-Submitted")
    if value and value.lower() != "no":
        return f"auto-reply header Auto-Submitted: {value}"
    return "not a delivery notice (no report part, bounce sender, subject or wording)"
