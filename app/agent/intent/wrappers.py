"""What is said around a request and is not part of it: greetings and thanks, polite and
wordy wrappers ("could you please be a dear and …"), pleasantries, and the end of a
sentence. Each `strip_*` returns the request inside, as typed."""

from __future__ import annotations

import re

_OPENER = re.compile(
    r"(?:(?P<greet>hi|hello|hey|hiya|heya|howdy|yo|good (?:morning|afternoon|evening)|morning)"
    r"(?:\s+there)?"
    r"|(?P<thank>thanks(?: a lot| so much| a million| a bunch| very much| again| in advance)?"
    r"|thank you(?: so much| very much| kindly| again)?|many thanks|thx|ty|cheers"
    r"|great|perfect|awesome|nice(?: one)?|brilliant|lovely|much appreciated|appreciate it|ta)"
    r"|(?P<ack>ok|okay|k|cool|alright|all right|got it|sounds good)"
    r"|oh|oops|actually|also|and|so|well|btw|by the way|hmm+|um+|uh|listen|look(?=\s*,)"
    r"|(?:wait|hold on|hang on|sorry|oh wait)(?=\s*[,!.:;-]))"
    r"(?:[\s,!.:;-]+|$)"
)
_POLITE = re.compile(
    r"^(?:(?:please|pls|plz|kindly|can you|could you|would you|will you|can u|could u"
    r"|you can|you could|just|quickly|go ahead and|i'd like you to|i want you to"
    r"|i need you to|i would like you to|also|pretty please),?\s+)+"
)
_DEAR = r"(?:dear|star|angel|gem|darling|love|sweetheart|legend|sweetie)"
_WORDY = re.compile(
    r"^(?:"
    rf"be\s+(?:a|an)\s+{_DEAR}\s+and"
    r"|do\s+me\s+a\s+(?:favou?r|solid)\s+and"
    r"|i\s+(?:was|am|'m)\s+wondering\s+if\s+you\s+(?:could|can|would|might)"
    r"|i\s+wonder\s+if\s+you\s+(?:could|can|would)"
    r"|(?:i'd|i\s+would)\s+(?:really\s+|so\s+|very\s+much\s+)?(?:appreciate\s+it|be\s+(?:so\s+"
    r"|really\s+|very\s+)?(?:grateful|thankful)|love\s+it)\s+if\s+you\s+(?:could|would|can)"
    r"|if\s+(?:it's|it\s+is)\s+not\s+too\s+much\s+(?:trouble|bother)\s*,?"
    r"|if\s+you\s+(?:don't|do\s+not)\s+mind\s*,?"
    r"|if\s+you\s+(?:could|would|can)"
    r"|when(?:ever)?\s+you\s+(?:get|have)\s+a\s+(?:chance|moment|minute|sec|second)\s*,?"
    r"|sorry\s+to\s+(?:bother|trouble|ask)(?:\s+you)?\s*,?(?:\s+but)?"
    r"|would\s+it\s+be\s+(?:possible|ok|okay)\s+(?:for\s+you\s+)?to"
    r"|(?:do|would)\s+you\s+think\s+you\s+could"
    r"|(?:would\s+you\s+)?be\s+(?:so\s+kind\s+as|kind\s+enough|able)\s+to"
    r"|(?:may|might|could|can)\s+i\s+(?:ask|get)\s+you\s+to"
    r"|(?:a\s+)?quick\s+(?:favou?r|one|request)\s*[:,-]?"
    r"|i\s+was\s+thinking\s*,?"
    r")\s+"
)
# "would you mind adding …": the request in its -ing form.
_MIND = re.compile(r"^(?:(?:would|do)\s+you\s+)?mind\s+(?P<verb>[a-z]+ing)\b")
_GERUNDS = {
    "adding": "add", "putting": "put", "marking": "mark", "removing": "remove",
    "deleting": "delete", "ticking": "tick", "crossing": "cross", "checking": "check",
    "renaming": "rename", "changing": "change", "showing": "show", "listing": "list",
    "reminding": "remind", "noting": "note", "writing": "write", "jotting": "jot",
    "updating": "update", "reopening": "reopen", "clearing": "clear", "unchecking": "uncheck",
    "taking": "take", "completing": "complete", "scratching": "scratch", "getting": "get",
}  # fmt: skip
_ASKING = re.compile(
    r"^(?:i'd like to|i would like to|i want to|i wanna|let's|lets)\s+"
    r"(?=(?:add|put|delete|remove|mark|complete|rename|change|edit|update|show|list|clear)\b)"
)
# (With "… for me" at the end, which the reader checks.)
ASKS_ASSISTANT = re.compile(r"(?:can|could|would|will)\s+(?:you|u)\b|(?:would|do)\s+you\s+mind\b")
_POLITE_END = re.compile(
    r"(?:\s*,?\s+(?:please|pls|plz|thanks|thank you|thx|for me|too|as well))+$"
)
_THANKS_END = re.compile(
    r"[\s,;:\-\u2013\u2014]+(?:(?:thanks|thank you|many thanks|cheers|thx|ty|much appreciated)"
    r"(?:\s+(?:so much|a lot|a million|a bunch|kindly|very much|in advance|again))?"
    r"|(?:that|it)\s+would\s+be\s+(?:really\s+|so\s+)?(?:great|lovely|awesome|amazing|perfect"
    r"|fantastic|brilliant|super|nice|helpful|much appreciated))$"
)
_PLEASANTRY = re.compile(
    r"^(?:i\s+)?hope\s+(?:you|your|you're|all)\b|^(?:have\s+a\s+(?:nice|good|great)\s+\w+)$"
    r"|^(?:how\s+are\s+you(?:\s+doing)?|you're\s+(?:the\s+best|a\s+star|great))$"
)


# How far from the end a closing "…, thanks so much" is looked for: searching only the tail
# keeps a message of repeated words linear (a search from every position was quadratic).
_TAIL = 80
# Wrappers inside wrappers are peeled this many times at most ("so, could you please, if it's
# not too much trouble, …"): a message of "thanks thanks …" is not peeled word by word.
_LAYERS = 4


def strip_openers(text: str) -> tuple[str, set[str]]:
    """Without the greetings, thanks and fillers it starts with; which kinds there were."""
    kinds: set[str] = set()
    lower, start = text.lower(), 0
    while start < len(lower) and (opener := _OPENER.match(lower, start)):
        kinds.update(name for name, value in opener.groupdict().items() if value)
        start = opener.end()
    return text[start:], kinds


def strip_wrappers(text: str) -> str:
    """The request inside "could you please be a dear and …", "if you could …, thanks"."""
    lower = text.lower()
    if len(lower) != len(text):  # (a few letters change length in lower case)
        text = lower
    for _ in range(_LAYERS):
        length = len(text)
        for wrapper in (_POLITE, _WORDY):
            if opening := wrapper.match(lower):
                text, lower = text[opening.end() :], lower[opening.end() :]
        if (mind := _MIND.match(lower)) and (verb := _GERUNDS.get(mind["verb"])):
            text, lower = verb + text[mind.end() :], verb + lower[mind.end() :]
        if ending := _THANKS_END.search(lower, max(0, len(lower) - _TAIL)):
            text, lower = text[: ending.start()], lower[: ending.start()]
        if len(text) == length:
            break
    if asking := _ASKING.match(lower):
        text, lower = text[asking.end() :], lower[asking.end() :]
    if polite_end := _POLITE_END.search(lower, max(0, len(lower) - _TAIL)):
        text = text[: polite_end.start()]
    return text.strip(" ,")


def is_pleasantry(text: str) -> bool:
    return _PLEASANTRY.match(text.lower()) is not None
