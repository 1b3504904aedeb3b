"""What the offline model understands: everyday todo requests, and what to do next.

Pure functions, no SDK: `understand()` reads a message, `next_step()` decides the next tool
call or the reply from what the tools have answered so far in this turn.

A message is read by a list of readers in order, each a set of phrasings of one request; the
first that recognises the message wins. Tasks named by words are found in `next_step()`, once
`list_tasks` has answered; when that is unsure (nothing or several tasks match) it asks instead
of acting. Several tasks in one message ("add milk and eggs", "remove #3 and #5") are acted on
one tool call at a time, so they keep the order they were named in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal[
    "add", "list", "complete", "reopen", "delete", "rename", "greet", "thank", "help", "say"
]
Status = Literal["pending", "completed", "all"]

HELP = (
    'I can keep your todo list. Try "add buy milk", "show my tasks", "what\'s left?", '
    '"complete task 3" or "done with buy milk", "rename task 3 to buy oat milk", '
    'or "delete buy milk".'
)
_LEFT_AS_IS = "Okay, I've left your list as it is."
_ACKNOWLEDGED = "Okay! Anything else for your list?"


@dataclass(frozen=True, slots=True)
class Intent:
    action: Action
    titles: tuple[str, ...] = ()  # add: one per task
    status: Status = "all"  # list; and which tasks `every` means
    task_ids: tuple[int, ...] = ()
    words: str | None = None  # the tasks named in the user's words, found once listed
    every: bool = False  # every task of `status`: "mark everything as done"
    new_title: str | None = None
    reply: str | None = None  # say: the answer, without tools


@dataclass(frozen=True, slots=True)
class ToolCallPlan:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """Either tool calls to make (with a line of thinking), or the reply."""

    thinking: str | None = None
    calls: tuple[ToolCallPlan, ...] = ()
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    output: dict[str, Any] = field(default_factory=dict)


# --- Vocabulary ---------------------------------------------------------------------------


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_IRREGULAR_PAST = {
    "bought": "buy", "got": "get", "gotten": "get", "paid": "pay", "did": "do", "done": "do",
    "sent": "send", "made": "make", "took": "take", "taken": "take", "wrote": "write",
    "written": "write", "went": "go", "gone": "go", "brought": "bring", "gave": "give",
    "given": "give", "sold": "sell", "told": "tell", "spoke": "speak", "spoken": "speak",
    "met": "meet", "fed": "feed", "swept": "sweep", "drove": "drive", "driven": "drive",
    "rang": "ring", "rung": "ring", "threw": "throw", "thrown": "throw", "drew": "draw",
    "drawn": "draw", "found": "find", "hung": "hang", "built": "build", "caught": "catch",
    "taught": "teach", "read": "read", "put": "put", "cut": "cut", "shut": "shut", "ran": "run",
    "ate": "eat", "eaten": "eat", "wore": "wear", "sat": "sit", "held": "hold", "kept": "keep",
    "spent": "spend", "forgot": "forget", "forgotten": "forget", "left": "leave", "lost": "lose",
}  # fmt: skip
# Past forms that do not report a task as done ("I forgot to call mom").
_NOT_DONE_PAST = _word_set(
    "forgot forgotten lost left missed skipped failed wanted needed tried planned decided started"
    " postponed delayed hoped meant intended wished added deleted removed renamed changed updated"
    " asked wondered noticed realized realised hated loved liked used ran"
)
# Verbs that todo titles start with ("buy milk", "call mom").
_TODO_VERBS = _word_set(
    "buy call pay book email e-mail send pick clean wash water walk fix post mail return renew"
    " file submit order schedule prepare write cook bake mow vacuum feed get text ring phone visit"
    " meet go take bring collect grab print sign review read study practice practise plan organize"
    " organise tidy sort repair replace reserve register apply install back charge pack iron do"
    " make hang fill empty put finish start ask tell remind check look find clear cancel answer"
    " reply respond contact invite thank paint hoover dust shop drop top wrap ship move sell"
    " donate recycle throw research draft edit update follow chase confirm set arrange learn"
)
_PRONOUN_REF = re.compile(
    r"^(?:it|that|this|them|those|these|that one|this one|the one|one|something|anything"
    r"|a task|tasks|the task|things|stuff|some tasks|my task|everything else)$"
)
_STOP_WORDS = _word_set(
    "the a an my our your his her their this that these those it its task tasks todo todos"
    " to-do item items one ones thing things please to for of on in at list and or with from"
    " off i i've i'm me we just already finally actually also now all is are was were be been"
    " has have had some any so very really too"
)

# --- Shared pieces of patterns --------------------------------------------------------------

_LIST_NAME = r"(?:my|the|our|your)\s+(?:[\w-]{1,20}\s+){0,2}?(?:list|tasks)"
_NUMBER = r"(?:(?:the\s+)?(?:task|item|todo|number|no\.?)\s*)?(?:number\s*)?#?\d+"
_NUMBER_LIST = rf"{_NUMBER}(?:(?:\s*(?:,|and|&|\+)\s*(?:and\s+)?|\s+){_NUMBER})*"
_NUMBERS = re.compile(rf"^{_NUMBER_LIST}$")
_DONE_STATE = r"(?:done|complete|completed|finished|sorted|handled|taken care of|ticked off)"
_NOT_DONE_STATE = (
    r"(?:not done|undone|not complete|not completed|not finished|incomplete|unfinished|pending"
    r"|open|to ?do|to-do|active|unchecked)"
)
_PARTICIPLE = r"(?:\w+ed|" + "|".join(sorted(_IRREGULAR_PAST, key=len, reverse=True)) + ")"


def _participles(verb: str) -> set[str]:
    stem = verb[:-1] if verb.endswith("e") else verb
    forms = {stem + "ed", verb + verb[-1] + "ed"}
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        forms.add(verb[:-1] + "ied")
    return forms


_TODO_PARTICIPLE = "(?:{})".format(
    "|".join(
        sorted(
            {form for verb in _TODO_VERBS for form in _participles(verb)}
            | {past for past, verb in _IRREGULAR_PAST.items() if verb in _TODO_VERBS},
            key=len,
            reverse=True,
        )
    )
)
_TASK_SEPARATOR = re.compile(
    r"\s*,\s*(?:and\s+|&\s+)?|\s+and\s+|\s*&\s*|\s*;\s*|\s+as well as\s+|\s+plus\s+"
)
_LIST_SUFFIX = re.compile(
    rf"\s+(?:(?:to|on|onto|in|into|from|off)\s+{_LIST_NAME}|on there|to it|on it)$", re.I
)

# --- Reading a message ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    """The message as typed (for titles) and in lower case (for matching), the same length;
    `asks_assistant` when it asked the assistant itself to do something ("can you …")."""

    text: str
    lower: str
    asks_assistant: bool = False

    @classmethod
    def of(cls, text: str, *, asks_assistant: bool = False) -> _Message:
        lower = text.lower()
        return cls(text if len(text) == len(lower) else lower, lower, asks_assistant)

    def span(self, match: re.Match[str], group: str) -> str:
        return self.text[match.start(group) : match.end(group)]


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_EMOTICON_END = re.compile(r"(?:[:;]-?[)(dDpP]|<3)$")
_OPENER = re.compile(
    r"^(?:(?P<greet>hi|hello|hey|hiya|heya|howdy|yo|good (?:morning|afternoon|evening)|morning)"
    r"(?:\s+there)?"
    r"|(?P<thank>thanks(?: a lot| so much)?|thank you(?: so much| very much)?|thx|ty|cheers"
    r"|great|perfect|awesome|nice(?: one)?|brilliant|lovely|much appreciated|appreciate it|ta)"
    r"|(?P<ack>ok|okay|k|cool|alright|all right|got it|sounds good)"
    r"|oh|oops|actually|also|and|so|well|btw|by the way|hmm+|um+|uh"
    r"|(?:wait|hold on|hang on|sorry|oh wait)(?=\s*[,!.:;-]))"
    r"(?:[\s,!.:;-]+|$)"
)
_POLITE = re.compile(
    r"^(?:(?:please|pls|plz|kindly|can you|could you|would you|will you|can u|could u"
    r"|you can|you could|just|quickly|go ahead and|i'd like you to|i want you to"
    r"|i need you to|i would like you to)\s+)+"
)
_ASKING = re.compile(
    r"^(?:i'd like to|i would like to|i want to|i wanna|let's|lets)\s+"
    r"(?=(?:add|put|delete|remove|mark|complete|rename|change|edit|update|show|list|clear)\b)"
)
_ASKS_ASSISTANT = re.compile(r"^(?:can|could|would|will)\s+(?:you|u)\b|\bfor me$")
_POLITE_END = re.compile(
    r"(?:\s*,?\s+(?:please|pls|plz|thanks|thank you|thx|for me|too|as well))+$"
)


def _normalize(message: str) -> str:
    lines = [_BULLET.sub("", line).strip() for line in message.translate(_QUOTES).splitlines()]
    joined = ""
    for line in filter(None, lines):
        joined += line if not joined else (" " if joined.endswith(":") else ", ") + line
    return _without_trailing_noise(" ".join(joined.split()))


def _without_trailing_noise(text: str) -> str:
    """Without the punctuation and smileys that end it, in linear time (messages are the
    user's: one regex for all of it backtracked exponentially on "....x")."""
    while True:
        text = text.rstrip(" .!?\u2026")
        emoticon = _EMOTICON_END.search(text[-3:])
        if emoticon is None:
            return text
        text = text[: len(text) - 3 + emoticon.start()]


def understand(message: str) -> Intent:
    text = _normalize(message)
    openers: set[str] = set()
    while text and (opener := _OPENER.match(text.lower())):
        openers.update(name for name, value in opener.groupdict().items() if value)
        text = text[opener.end() :]
    asks_assistant = _ASKS_ASSISTANT.search(text.lower()) is not None
    text = _cut(_ASKING, _cut(_POLITE, text))
    if polite_end := _POLITE_END.search(text.lower()):
        text = text[: polite_end.start()]
    text = text.strip(" ,")
    if not text:
        return _opener_intent(openers)
    said = _Message.of(text, asks_assistant=asks_assistant)
    for reader in _READERS:
        intent = reader(said)
        if intent is not None:
            return intent
    return Intent("help")


def _cut(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.match(text.lower())
    return text[match.end() :] if match else text


def _opener_intent(openers: set[str]) -> Intent:
    if "thank" in openers:
        return Intent("thank")
    if "greet" in openers:
        return Intent("greet")
    if "ack" in openers:
        return Intent("say", reply=_ACKNOWLEDGED)
    return Intent("help")


# --- Readers: each recognises one kind of request, or returns None ---------------------------

Reader = Callable[[_Message], Intent | None]


def _rules(action: Action, *patterns: str) -> Reader:
    compiled = tuple(re.compile(pattern) for pattern in patterns)

    def read(said: _Message) -> Intent | None:
        for pattern in compiled:
            match = pattern.match(said.lower)
            if match is not None:
                intent = _intent_of(action, said, match)
                if intent is not None:
                    return intent
        return None

    return read


def _intent_of(action: Action, said: _Message, match: re.Match[str]) -> Intent | None:
    groups = match.groupdict()
    if action == "add":
        if groups.get("item"):
            return _adding(_titles(said.span(match, "item")), prefix="Buy ")
        return _adding(_titles(said.span(match, "title")))
    reference = said.span(match, "ref")
    if not _names_something(reference):
        return None
    if groups.get("state") in _NOT_DONE_PAST:
        return None  # "the milk is needed"
    if groups.get("state") and not re.fullmatch(_DONE_STATE, groups["state"]):
        reference += " " + groups["state"]  # "the plants are watered": the plants, watered
    if action == "rename":
        return _renaming(reference, said.span(match, "new"))
    return _targeting(action, reference)


def _names_something(reference: str) -> bool:
    """False for "I'm" in "I'm tired": no number, no pronoun, no word that could name a task."""
    lower = reference.strip().lower()
    return bool(
        _NUMBERS.match(lower) or _PRONOUN_REF.match(lower) or _every(lower) or _stems(lower)
    )


def _adding(titles: tuple[str, ...], prefix: str = "") -> Intent | None:
    if not titles:
        return None
    if len(titles) == 1 and _PRONOUN_REF.match(titles[0].lower()):
        return Intent("say", reply='What should I add? For example: "add buy milk".')
    if prefix:
        titles = tuple(prefix + title[:1].lower() + title[1:] for title in titles)
    return Intent("add", titles=titles)


_TIME_ONLY = re.compile(
    r"^(?:(?:next|this|on|at|by|until|till|for)\s+)*(?:today|tonight|tomorrow|later|now|soon"
    r"|(?:mon|tues|wednes|thurs|fri|satur|sun)day|week|weekend|month|year|morning|afternoon"
    r"|evening|noon|midnight|\d{1,2}(?:[:.]\d\d)?\s*(?:am|pm)?|the (?:weekend|morning|evening))$"
)


def _renaming(reference: str, new: str) -> Intent | None:
    if re.fullmatch(r"(?:i|we|you|he|she|they)", reference.strip().lower()):
        return None
    new_title = _clean_part(_strip_list_suffix(new))
    if re.fullmatch(_DONE_STATE, new_title.lower()):
        return _targeting("complete", reference)  # "change task 3 to done"
    if re.fullmatch(_NOT_DONE_STATE, new_title.lower()):
        return _targeting("reopen", reference)
    if not new_title:
        return None
    if _TIME_ONLY.match(new_title.lower()):  # "move the dentist to Friday": not a new title
        return Intent(
            "say",
            reply="I can't schedule tasks, only rename them. To put the day in the title, "
            'say it in full, like "rename task 3 to dentist on Friday".',
        )
    intent = _targeting("rename", reference)
    if intent.action != "rename":
        return intent
    if len(intent.task_ids) > 1:
        return Intent("say", reply="I rename one task at a time: which one?")
    return Intent(
        "rename",
        task_ids=intent.task_ids,
        words=intent.words,
        new_title=new_title[:1].upper() + new_title[1:],
    )


def _targeting(action: Action, reference: str) -> Intent:
    """The tasks a reference names: numbers, words, every task of a kind, or a question."""
    reference = _strip_list_suffix(reference).strip(" \"',:")
    lower = reference.lower()
    if not lower or _PRONOUN_REF.match(lower):
        return Intent("say", reply=_which_task(action))
    every = _every(lower)
    if every is not None:
        return _every_intent(action, every)
    if _NUMBERS.match(lower):
        return Intent(action, task_ids=tuple(int(n) for n in re.findall(r"\d+", lower)))
    return Intent(action, words=reference)


_EVERY_COMPLETED = re.compile(
    r"^(?:(?:all|every)\s+)?(?:of\s+)?(?:the\s+|my\s+)?(?:completed|done|finished|ticked off"
    r"|checked off|crossed off)(?:\s+(?:tasks?|ones|items|todos|things))?$"
    r"|^(?:all|everything|every task|all (?:my |the )?tasks)\s+(?:that's|that is|that are"
    r"|which are|i've|i have|we've)\s+(?:already\s+)?(?:done|completed|finished)$"
)
_EVERY_PENDING = re.compile(
    r"^(?:(?:all|every)\s+)?(?:of\s+)?(?:the\s+|my\s+)?(?:pending|open|unfinished|remaining"
    r"|outstanding)(?:\s+(?:tasks?|ones|items|todos|things))?$"
)
_EVERYTHING = re.compile(
    r"^(?:everything|all|all of (?:it|them)|all (?:of )?(?:my |the )?(?:tasks|todos|items)"
    r"|every task|the whole (?:list|thing)|my whole list|my (?:[\w-]+ )?list|the (?:[\w-]+ )?list"
    r"|the lot)$"
)


def _every(reference: str) -> Status | None:
    if _EVERY_COMPLETED.match(reference):
        return "completed"
    if _EVERY_PENDING.match(reference):
        return "pending"
    return "all" if _EVERYTHING.match(reference) else None


def _every_intent(action: Action, every: Status) -> Intent:
    if action == "delete" and every != "completed":
        return Intent(
            "say",
            reply="To keep your list safe I don't delete everything at once: name a task, "
            'like "delete task 3", or say "clear completed tasks".',
        )
    if action == "rename":
        return Intent("say", reply=_which_task(action))
    default: Status = "completed" if action in ("delete", "reopen") else "pending"
    return Intent(action, every=True, status=default if every == "all" else every)


_WHICH_TASK = {"complete": "mark as done", "reopen": "reopen", "delete": "delete"}


def _which_task(action: Action) -> str:
    command = action if action in ("reopen", "delete") else "complete"
    return (
        f"Which task should I {_WHICH_TASK.get(action, 'change')}? Say its number, like "
        f'"{command} task 3", or its words. Say "show my tasks" to see your list.'
    )


def _titles(span: str) -> tuple[str, ...]:
    """The titles in an add request: one, or several when the parts are clearly separate."""
    span = _clean_title_span(span)
    quoted = [title for _, title in _QUOTED.findall(span)]
    if len(quoted) > 1 and _ONLY_SEPARATORS.fullmatch(_QUOTED.sub("", span)):
        return tuple(_capitalized(title.strip()) for title in quoted)
    if span[:1] in "\"'" and span[-1:] == span[:1]:
        return (_capitalized(span[1:-1]),) if span[1:-1].strip() else ()
    parts = [part for part in map(_clean_part, _TASK_SEPARATOR.split(span)) if part]
    if len(parts) > 1 and _separate_tasks(parts):
        return tuple(_capitalized(part) for part in parts)
    whole = _clean_part(span)
    return (_capitalized(whole),) if whole else ()


_TITLE_LEAD = re.compile(
    r"^(?:(?:(?:a|an|another|one more)\s+)?(?:new\s+)?(?:task|todo|to-do|reminder|item|entry)"
    r"(?:\s+(?:to|called|named|titled|saying|that says|for)\b|\s*:)?\s*"
    r"|to[- ]?do\s*:\s*"
    r"|(?:to|on|onto)\s+(?:my|the)\s+(?:[\w-]+\s+){0,2}?list\s*:?\s*"
    r"|(?:these|the following|following|this)\s*:\s*|:\s*)",
    re.I,
)
_QUOTED = re.compile(r"([\"'])(.+?)\1")
_ONLY_SEPARATORS = re.compile(r"(?:\s|,|;|&|\band\b)*")
_PREPOSITIONS = _word_set("with for to at on in about from by of before after")


def _clean_title_span(span: str) -> str:
    span = _strip_list_suffix(span.strip())
    lead = _TITLE_LEAD.match(span)
    return _strip_list_suffix(span[lead.end() :]) if lead and lead.end() < len(span) else span


def _clean_part(part: str) -> str:
    part = part.strip(" \"'.,;:-")
    return re.sub(r"^(?:to|also|and)\s+", "", part, flags=re.I).strip(" \"'")


def _separate_tasks(parts: list[str]) -> bool:
    """Several tasks for "call mom and pay rent" or "milk and eggs"; one for "call mom and dad"."""
    verbs = [part.split()[0].lower() in _TODO_VERBS for part in parts]
    if all(verbs):
        return True
    short_things = all(
        len(part.split()) <= 3 and not _PREPOSITIONS & set(part.lower().split()) for part in parts
    )
    return not any(verbs) and short_things


def _capitalized(title: str) -> str:
    return title[:1].upper() + title[1:]


def _strip_list_suffix(text: str) -> str:
    # A suffix is under 80 characters: searching only the tail keeps "… to my list" * n linear.
    while (match := _LIST_SUFFIX.search(text, max(0, len(text) - 80))) is not None:
        text = text[: match.start()]
    return text.strip()


def _list_status(lower: str) -> Status:
    lower = re.sub(r"\bto[- ]?do list\b", "list", lower)
    for status, cue in _STATUS_CUES:
        if cue.search(lower):
            return status
    return "all"


_STATUS_CUES: tuple[tuple[Status, re.Pattern[str]], ...] = (
    (
        "pending",
        re.compile(
            r"\b(?:haven't|have not|havent|not (?:yet )?(?:done|finished|completed)|unfinished"
            r"|incomplete|undone|am i done|are we done|yet to)\b"
        ),
    ),
    ("all", re.compile(r"\b(?:including|include|too|as well|both|everything|whole|entire)\b")),
    (
        "completed",
        re.compile(
            r"\b(?:done|finished|completed?|did i|did we|i did|get done|got done|accomplished"
            r"|achieved|crossed off|ticked off|checked off)\b"
        ),
    ),
    (
        "pending",
        re.compile(
            r"\b(?:left|remaining|pending|open|outstanding|still|next|need to|have to|supposed to"
            r"|got to|plate|to do|due|upcoming|unchecked|agenda)\b"
        ),
    ),
)

_HELP_QUESTION = re.compile(
    r"^(?:help|help me|what can you do|what do you do|what are you|who are you|what is this"
    r"|how does (?:this|it) work)$|^(?:how (?:do|can|should|would) (?:i|you|we)|how to)\b"
    r"|^help\b(?! me (?:to )?remember)"
)
_DISMISSAL = re.compile(
    r"^(?:never ?mind|forget (?:it|that|about it)|scratch that|no worries|cancel that"
    r"|ignore (?:that|me|this)|nothing|no thanks|no thank you)$"
    r"|^(?:don't|dont|do not)\s+(?:add|delete|remove|change|do|mark|touch|rename|edit|complete)\b"
)
_LIST_QUESTION = re.compile(
    r"^(?:what|what's|whats|what're|which|how many|how much|is there|are there|anything|any"
    r"|am i|are we|did i|did we|have i|have we|do i|is|are|was|were|has|show|list|display"
    r"|view|see|give me|tell me|read me|read out|remind me (?:what|of)|can i see|let me see"
    r"|where are|pull up|get me)\b"
)
_LIST_TOPIC = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|to do|list|left|remaining|pending|outstanding|open|agenda|plate"
    r"|next|done|finish(?:ed)?|completed?|did (?:i|we)|need to|have to|supposed to|got to"
    r"|still|haven't|everything|rundown|due|planned|accomplish(?:ed)?|get done)\b"
)
_LIST_MENTION = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|to do|list|left|remaining|pending|outstanding|agenda)\b"
)


def _help(said: _Message) -> Intent | None:
    return Intent("help") if _HELP_QUESTION.match(said.lower) else None


def _dismissal(said: _Message) -> Intent | None:
    return Intent("say", reply=_LEFT_AS_IS) if _DISMISSAL.match(said.lower) else None


def _list_question(said: _Message) -> Intent | None:
    if _LIST_QUESTION.match(said.lower) and _LIST_TOPIC.search(said.lower):
        return Intent("list", status=_list_status(said.lower))
    return None


def _list_mention(said: _Message) -> Intent | None:
    if _LIST_MENTION.search(said.lower):
        return Intent("list", status=_list_status(said.lower))
    return None


_BY_MISTAKE = r"(?:by mistake|by accident|accidentally|in error|too early|too soon)"

_reopen = _rules(
    "reopen",
    r"^(?:reopen|re-open|uncheck|untick|unmark|un-?complete|un-?check|un-?tick|undo|restore)"
    r"\s+(?P<ref>.+)$",
    rf"^(?:mark|set|flag|change|move)\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?(?:back\s+to\s+)?"
    rf"{_NOT_DONE_STATE}$",
    r"^(?:set|move|put|mark|bring|change|add|turn)\s+(?P<ref>.+?)\s+back"
    r"(?:\s+(?:to|on|onto|in|into|as)\b.*)?$",
)
# Said of the task rather than asked of the list: read after the requests that start with a verb.
_reopen_state = _rules(
    "reopen",
    r"^(?P<ref>.+?)\s+(?:isn't|isnt|is not|aren't|arent|are not|wasn't|was not|weren't"
    r"|hasn't been|has not been|haven't been|have not been)\s+(?:actually\s+|really\s+)?"
    rf"(?P<state>{_DONE_STATE}|{_PARTICIPLE})(?:\s+yet)?(?:\s+after all)?$",
    r"^(?:i|we)\s+(?:didn't|didnt|did not|haven't|havent|have not|hadn't|never)\s+"
    r"(?:actually\s+|really\s+|yet\s+)?(?P<ref>.+?)(?:\s+yet|\s+after all)?$",
    r"^(?:(?:i|we)\s+)?(?:accidentally\s+)?(?:marked|ticked|checked|crossed|completed)\s+"
    rf"(?:off\s+)?(?P<ref>.+?)(?:\s+(?:as\s+)?(?:done|complete|completed|off))?\s+{_BY_MISTAKE}$",
    r"^not (?:done|finished)(?: yet)?\s*:\s*(?P<ref>.+)$",
)
_NEW_TITLE_SEPARATOR = (
    r"(?:\s*:\s*|\s+[-\u2013\u2014]\s+|\s*(?:\u2192|->|=>)\s*|\s+to\s+(?:say|read)\s*:?\s+"
    r"|\s+(?:so\s+(?:that\s+)?)?(?:it|that it)\s+(?:says|reads)\s*:?\s+|\s+(?:to|into|as)\s+)"
)
_rename = _rules(
    "rename",
    r"^(?:rename|change|update|edit|reword|retitle|modify|alter|amend)\s+"
    r"(?:the\s+(?:title|name|text|wording)\s+(?:of|on|for)\s+)?"
    rf"(?P<ref>.+?){_NEW_TITLE_SEPARATOR}(?P<new>.+)$",
    r"^(?:fix|correct)\s+(?:the\s+|a\s+)?(?:typos?|spelling|title|name|wording)\s+"
    rf"(?:in|of|on|for)\s+(?P<ref>.+?){_NEW_TITLE_SEPARATOR}(?P<new>.+)$",
    r"^(?P<ref>.+?)\s+(?:should|must|needs to|has to|ought to)\s+"
    r"(?:say|read|be called|be named|be renamed to|be(?=\s+[\"']))\s*:?\s+(?P<new>.+)$",
    rf"^make\s+(?P<ref>{_NUMBER}|\"[^\"]+\"|'[^']+')\s+(?:say\s+|read\s+|be\s+|into\s+)?"
    r"(?P<new>.+)$",
    r"^(?:replace|swap)\s+(?P<ref>.+?)\s+(?:with|for)\s+(?P<new>.+)$",
)
_SUBJECT = r"(?:(?:i|we)(?:'ll|'ve|'d|\s+will|\s+have|\s+had)?\s+)?"
_add = _rules(
    "add",
    r"^(?:add|include|insert)(?:\s*:\s*|\s+)(?P<title>.+)$",
    r"^(?:put|stick|throw|pop|place|chuck|get)\s+(?P<title>.+?)\s+(?:on|onto|in|into|to)\s+"
    r"(?:(?:my|the|our|your)\s+(?:[\w-]+\s+){0,2}?(?:list|tasks)|there|it)$",
    r"^(?:jot|write|note|put)\s+down\s*:?\s*(?P<title>.+)$",
    r"^(?:make|take|leave)\s+(?:a\s+)?note(?:\s+to\s+(?:self|myself))?\s*(?:to|that|about|of|:)"
    r"\s*(?P<title>.+)$",
    r"^note to (?:self|myself)\s*:?\s*(?P<title>.+)$",
    r"^(?:set|create|make|add)\s+(?:up\s+)?(?:a\s+)?reminder\s*(?:to|for|that|about|:)\s*"
    r"(?P<title>.+)$",
    r"^(?:create|make|start|open|new|another)\s+(?:a\s+)?(?:new\s+)?(?:task|todo|to-do|item"
    r"|entry|reminder)\s*(?:called|named|titled|for|to|that says|saying|:)?\s+(?P<title>.+)$",
    r"^(?:todo|to-do|to do|task|reminder)\s*:\s*(?P<title>.+)$",
    r"^(?:remind me|help me (?:to )?remember)\s+(?:to|that|about|of)\s+(?P<title>.+)$",
    r"^(?:don't|dont|do not)\s+let me forget\s+(?:to\s+|about\s+|that\s+)?(?P<title>.+)$",
    r"^(?:don't|dont|do not)\s+forget\s+(?:to\s+|about\s+|that\s+)?(?P<title>.+)$",
    r"^(?:make sure|be sure)\s+(?:that\s+)?(?:i|we)\s+(?:remember|don't forget|dont forget"
    r"|do not forget)\s+(?:to\s+|about\s+)?(?P<title>.+)$",
    rf"^{_SUBJECT}(?:must\s+|need to\s+)?remember\s+(?:to|that)\s+(?P<title>.+)$",
    rf"^{_SUBJECT}(?:(?:really|still|also|probably|definitely|then|just)\s+)*"
    r"(?:need to|have to|must|should|ought to|gotta|got to|have got to|better|had better)\s+"
    r"(?:(?:really|also|still|remember to|not forget to)\s+)*(?P<title>.+)$",
    r"^(?:(?:we're|we are|i'm|i am|we've|i've|we|i)\s+)?(?:(?:almost|nearly|completely"
    r"|totally|all|just)\s+)?(?:run(?:ning)?\s+|ran\s+)?(?:out of|low on)\s+(?P<item>.+)$",
)
_complete = _rules(
    "complete",
    rf"^(?:mark|set|flag|tick|check|consider)\s+(?P<ref>.+?)\s+(?:as\s+)?{_DONE_STATE}$",
    r"^(?:complete|finish|close|check off|tick off|cross off|strike off|mark off|knock off)\s+"
    r"(?P<ref>.+)$",
    rf"^(?:cross|tick|check|mark|knock)\s+(?P<ref>.+?)\s+off(?:\s+{_LIST_NAME})?$",
    rf"^(?:tick|check)\s+(?P<ref>{_NUMBER_LIST})$",
    r"^tick\s+(?P<ref>.+)$",
    r"^(?:(?:i'm|i am|we're|we are|i've|i have|all|now|finally)\s+)*(?:done|finished|through)"
    r"\s+with\s+(?P<ref>.+)$",
    r"^(?:done|finished|completed)\s*[:\-\u2013]\s*(?P<ref>.+)$",
    rf"^(?:done|finished)\s+(?P<ref>{_NUMBER_LIST})$",
    rf"^(?P<ref>{_NUMBER_LIST})\s+(?:(?:is|are)\s+)?(?:now\s+)?{_DONE_STATE}$",
)
_complete_state = _rules(
    "complete",
    r"^(?P<ref>.+?)\s*(?::|\s[-\u2013\u2014])\s*(?:done|finished|complete|completed|\u2713|\u2714)$",
    r"^(?P<ref>.+?)(?:'s|'re|\s+is|\s+are|\s+was|\s+were|\s+has been|\s+have been|'s been"
    r"|\s+got)\s+(?:now\s+|all\s+|finally\s+|already\s+)?"
    rf"(?P<state>{_DONE_STATE}|{_PARTICIPLE})(?:\s+(?:up|out|off|back|in|away))?$",
    # "insurance renewed!": a report without its verb, so only with a verb tasks start with.
    rf"^(?P<ref>.+?)\s+(?:(?:all|now)\s+)?(?P<state>{_DONE_STATE}|{_TODO_PARTICIPLE})$",
)
_delete = _rules(
    "delete",
    r"^(?:delete|remove|erase|drop(?!\s+off\b)|get rid of|cancel|scratch|ditch|nix|toss|strike"
    r"|kill|bin|trash|axe|wipe|scrap|chuck|forget about|forget|never ?mind|clear out|clear"
    r"|discard|dump)\s+"
    rf"(?P<ref>.+?)(?:\s+(?:from|off)\s+{_LIST_NAME})?$",
    rf"^take\s+(?P<ref>.+?)\s+(?:off|out of)(?:\s+{_LIST_NAME})?$",
    r"^(?P<ref>.+?)\s+can\s+(?:come off|go|be (?:removed|deleted|dropped|scrapped))"
    rf"(?:\s+(?:from\s+|off\s+)?{_LIST_NAME})?$",
    r"^(?:i|we)\s+(?:don't|dont|do not|no longer|won't|will not|wont)\s+(?:really\s+|even\s+)?"
    r"need(?:\s+to)?\s+(?P<ref>.+?)(?:\s+any\s?more)?$",
    r"^no\s+(?:more\s+)?need\s+(?:to\s+|for\s+)?(?P<ref>.+)$",
    r"^(?:stop|quit|no more)\s+reminding me\s+(?:about\s+|to\s+|of\s+)?(?P<ref>.+)$",
)

_PAST_REPORT = re.compile(
    r"^(?P<subject>(?:i|we|i've|we've)\s+)?(?:(?:have|had|just|already|finally|actually|also|now"
    r"|totally|officially|successfully)\s+)*(?P<verb>[a-z'-]+)\s+(?P<rest>.+)$"
)
_COMPLETION_VERBS = _word_set(
    "finished completed done did wrapped crossed ticked checked knocked sorted"
)
_NOT_PAST = _word_set("need speed bleed breed proceed succeed exceed embed shed shred")


def _past_report(said: _Message) -> Intent | None:
    """ "I bought the milk", "called mom": a task reported done, in the past tense."""
    match = _PAST_REPORT.match(said.lower)
    if match is None or not _is_past(match["verb"]):
        return None
    if _IRREGULAR_PAST.get(match["verb"]) == match["verb"] and not match["subject"]:
        return None  # "put the bins out" is a task, "I put the bins out" a report
    rest = said.span(match, "rest")
    if match["verb"] in _COMPLETION_VERBS:
        return _targeting("complete", re.sub(r"^(?:with|off|up|out)\s+", "", rest, flags=re.I))
    if _NUMBERS.match(rest.lower()):
        return _targeting("complete", rest)
    return _targeting("complete", said.span(match, "verb") + " " + rest)


def _is_past(verb: str) -> bool:
    if verb in _NOT_DONE_PAST or verb in _NOT_PAST:
        return False
    return verb in _IRREGULAR_PAST or re.fullmatch(r"[a-z]{3,}ed", verb) is not None


_NOT_TODO_START = _word_set("tell find look clear cancel finish update edit")


def _bare_task(said: _Message) -> Intent | None:
    """ "buy eggs": a task title on its own is a task to add."""
    first = said.lower.split()[0]
    if first not in _TODO_VERBS or first in _NOT_TODO_START:
        return None
    if said.asks_assistant:  # "can you order pizza for me?": not something it can do
        return Intent(
            "say",
            reply=f'I can\'t do that myself, but I can put it on your list: say "add {said.text}".',
        )
    return _adding(_titles(said.text))


_MISSING_NEW_TITLE = re.compile(r"^(?:rename|edit|change|update|reword|retitle|modify)\s+(.+)$")
_DONE_WITHOUT_TASK = re.compile(
    r"^(?:done|finished|complete|completed|all done|i'm done|i am done|we're done|it's done"
    r"|that's done|that is done|mark (?:it )?(?:as )?done|mark done)$"
)


def _incomplete_request(said: _Message) -> Intent | None:
    if missing := _MISSING_NEW_TITLE.match(said.lower):
        return Intent(
            "say",
            reply=f'What should "{missing.group(1)}" say instead? For example: '
            '"rename task 3 to buy oat milk".',
        )
    if _DONE_WITHOUT_TASK.match(said.lower):
        return Intent("say", reply=_which_task("complete"))
    return None


_YES_NO_QUESTION = re.compile(
    r"^(?:is|are|was|were|has|have|had|do|does|can|could|should|would|will|shall)\b"
    r"|^did (?:i|we|you|he|she|they)\b"  # "did the laundry" reports, "did I …?" asks
)


def _statement(reader: Reader) -> Reader:
    """A reader of reports ("the milk is bought"), which a question asking one is not."""

    def read(said: _Message) -> Intent | None:
        return None if _YES_NO_QUESTION.match(said.lower) else reader(said)

    return read


_READERS: tuple[Reader, ...] = (
    _help,
    _dismissal,
    _list_question,
    _reopen,
    _rename,
    _add,
    _complete,
    _delete,
    _statement(_reopen_state),
    _statement(_complete_state),
    _statement(_past_report),
    _bare_task,
    _incomplete_request,
    _list_mention,
)


# --- What to do next -------------------------------------------------------------------------


def next_step(intent: Intent, results: list[ToolResult]) -> Step:
    if intent.action == "greet":
        return Step(reply="Hi! " + HELP)
    if intent.action == "thank":
        return Step(reply="You're welcome! Anything else for your list?")
    if intent.action == "help":
        return Step(reply=HELP)
    if intent.action == "say":
        return Step(reply=intent.reply or HELP)
    if intent.action == "add":
        return _add_step(intent, results)
    if intent.action == "list":
        if not results:
            what = {"pending": "pending tasks", "completed": "completed tasks", "all": "tasks"}
            return _call(
                f"Looking up your {what[intent.status]}.", "list_tasks", status=intent.status
            )
        return Step(reply=_reply(intent, results[-1]))
    return _act_on_tasks(intent, results)


def _add_step(intent: Intent, results: list[ToolResult]) -> Step:
    if results and "error" in results[-1].output:
        return Step(reply=_after_error(intent, results))
    if len(results) < len(intent.titles):
        title = intent.titles[len(results)]
        return _call(f'Adding "{title}" to the list.', "add_task", title=title)
    return Step(reply=_changes_reply(intent, results))


def _act_on_tasks(intent: Intent, results: list[ToolResult]) -> Step:
    looks_up = intent.words is not None or intent.every
    if looks_up and not results:
        what = f'the task that matches "{intent.words}"' if intent.words else "your tasks"
        return _call(f"Looking for {what}.", "list_tasks", status="all")
    changes = results[1:] if looks_up else results
    if changes and "error" in changes[-1].output:
        return Step(reply=_after_error(intent, changes))
    targets: list[int] | str = list(intent.task_ids)
    if looks_up:
        listing = results[0].output
        if "error" in listing:
            return Step(reply=_error_reply(listing))
        targets = _targets(intent, listing.get("tasks", []))
    if isinstance(targets, str):
        return Step(reply=targets)
    if len(changes) < len(targets):
        return _task_call(intent, targets[len(changes)])
    return Step(reply=_changes_reply(intent, changes))


def _targets(intent: Intent, tasks: list[dict[str, Any]]) -> list[int] | str:
    """The ids of the tasks the intent names, or what to ask when that is unsure."""
    if intent.every:
        done = intent.status == "completed"
        chosen = [int(task["id"]) for task in tasks if bool(task["completed"]) == done]
        return chosen or f"You have no {intent.status} tasks right now."
    words = intent.words or ""
    score, whole = _scored_matches(words, tasks, intent.action)
    parts = _TASK_SEPARATOR.split(words) if intent.action != "rename" else [words]
    if len(whole) == 1 and (score == 1.0 or len(parts) == 1):
        return [int(whole[0]["id"])]
    if len(parts) == 1:
        return _unsure(intent, words, whole)
    chosen = []
    for part in parts:
        if _NUMBERS.match(part.lower()):
            chosen.extend(int(number) for number in re.findall(r"\d+", part))
            continue
        matches = match_tasks(part, tasks, intent.action)
        if len(matches) != 1:
            return _unsure(intent, part, matches)
        chosen.append(int(matches[0]["id"]))
    return list(dict.fromkeys(chosen))


def _unsure(intent: Intent, words: str, matches: list[dict[str, Any]]) -> str:
    if not matches:
        return f'I couldn\'t find a task matching "{words}". Say "show my tasks" to see your list.'
    options = ", ".join(f"#{task['id']} {task['title']}" for task in matches)
    return (
        f'More than one task matches "{words}": {options}. '
        f'Which one? You can say "{intent.action} task {matches[0]["id"]}".'
    )


def _task_call(intent: Intent, task_id: int) -> Step:
    if intent.action == "complete":
        return _call(f"Marking task #{task_id} as done.", "complete_task", task_id=task_id)
    if intent.action == "reopen":
        return _call(
            f"Marking task #{task_id} as not done.",
            "update_task",
            task_id=task_id,
            title=None,
            description=None,
            completed=False,
        )
    if intent.action == "rename":
        return _call(
            f'Renaming task #{task_id} to "{intent.new_title}".',
            "update_task",
            task_id=task_id,
            title=intent.new_title,
            description=None,
            completed=None,
        )
    return _call(f"Deleting task #{task_id}.", "delete_task", task_id=task_id)


def _call(thinking: str, name: str, **arguments: Any) -> Step:
    return Step(thinking=thinking, calls=(ToolCallPlan(name, arguments),))


# --- Finding tasks by words ------------------------------------------------------------------


def _stem(word: str) -> str:
    """A crude common form, the same for "water", "watered" and "watering", "paid" and "pay"."""
    word = _IRREGULAR_PAST.get(word.removesuffix("'s").strip("'"), word.removesuffix("'s"))
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith(("ied", "ies")):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {_stem(word) for word in words if word.strip("'") not in _STOP_WORDS} - {""}


def match_tasks(words: str, tasks: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """The tasks whose titles best match `words`; more than one when it is ambiguous."""
    return _scored_matches(words, tasks, action)[1]


def _scored_matches(
    words: str, tasks: list[dict[str, Any]], action: str
) -> tuple[float, list[dict[str, Any]]]:
    wanted = words.strip(" \"'").lower()
    exact = [task for task in tasks if str(task["title"]).lower() == wanted]
    if exact:
        return 1.0, exact
    stems = _stems(words)
    if not stems:
        return 0.0, []
    scored = [(len(stems & _stems(str(task["title"]))) / len(stems), task) for task in tasks]
    best = max((score for score, _ in scored), default=0.0)
    if best < 0.5:
        return best, []
    matches = [task for score, task in scored if score == best]
    if len(matches) > 1 and action in ("complete", "reopen"):
        # "done with milk" means the milk task that is not done yet, and the other way round.
        wanted_state = action == "reopen"
        narrowed = [task for task in matches if bool(task["completed"]) == wanted_state]
        matches = narrowed or matches
    return best, matches


# --- Replies ---------------------------------------------------------------------------------


def _reply(intent: Intent, result: ToolResult) -> str:
    output = result.output
    if "error" in output:
        return _error_reply(output)
    if result.name == "list_tasks":
        return _list_reply(output.get("tasks", []), output.get("status", "all"))
    return _changes_reply(intent, [result])


def _changes_reply(intent: Intent, results: list[ToolResult]) -> str:
    tasks = [result.output.get("task") or result.output.get("deleted") or {} for result in results]
    named = _and_join([f'"{task.get("title", "")}" (#{task.get("id")})' for task in tasks])
    if intent.action == "add" and len(tasks) == 1:
        return f'Added "{tasks[0].get("title", "")}" to your list as task #{tasks[0].get("id")}.'
    if intent.action == "add":
        return f"Added {named} to your list."
    if intent.action == "complete":
        return f"Marked {named} as done. Nice work!"
    if intent.action == "delete":
        return f"Deleted {named} from your list."
    if intent.action == "reopen":
        verb = "is" if len(tasks) == 1 else "are"
        return f"{named} {verb} back on your list as not done."
    return " ".join(f'Task #{task.get("id")} is now "{task.get("title", "")}".' for task in tasks)


def _after_error(intent: Intent, results: list[ToolResult]) -> str:
    done = _changes_reply(intent, results[:-1]) + " " if len(results) > 1 else ""
    return done + _error_reply(results[-1].output)


def _and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _error_reply(output: dict[str, Any]) -> str:
    if output.get("error") == "not_found":
        return (
            f"I couldn't find task #{output.get('task_id')} on your list. "
            'Say "show my tasks" to see your list.'
        )
    if output.get("error") == "tool_failed":
        return (
            "Sorry, I couldn't reach your task list just now, so nothing was changed. "
            "Please try again."
        )
    return f"Sorry, I couldn't do that: {output.get('message', 'the request was not valid')}"


def _list_reply(tasks: list[dict[str, Any]], status: str) -> str:
    if not tasks:
        return {
            "pending": "Nothing left to do. Enjoy your free time!",
            "completed": "You haven't completed any tasks yet.",
        }.get(status, 'Your list is empty. Add something with "add buy milk".')
    count = len(tasks)
    noun = "task" if count == 1 else "tasks"
    header = {
        "pending": f"You have {count} pending {noun}:",
        "completed": f"You've completed {count} {noun}:",
    }.get(status, f"You have {count} {noun}:")
    lines = [
        f"- #{task['id']} {task['title']}"
        + (" (done)" if task["completed"] and status == "all" else "")
        for task in tasks
    ]
    return "\n".join([header, *lines])
