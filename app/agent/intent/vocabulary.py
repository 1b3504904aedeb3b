"""The words the offline model knows: verbs, past forms, words that name nothing, and the
pattern pieces every reader shares. Tables only; the readers are in `readers`."""

from __future__ import annotations

import re


def word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


IRREGULAR_PAST = {
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
NOT_DONE_PAST = word_set(
    "forgot forgotten lost left missed skipped failed wanted needed tried planned decided started"
    " postponed delayed hoped meant intended wished added deleted removed renamed changed updated"
    " asked wondered noticed realized realised hated loved liked used ran"
)
NOT_PAST = word_set("need speed bleed breed proceed succeed exceed embed shed shred")
# Verbs that todo titles start with ("buy milk", "call mom").
TODO_VERBS = word_set(
    "buy call pay book email e-mail send pick clean wash water walk fix post mail return renew"
    " file submit order schedule prepare write cook bake mow vacuum feed get text ring phone visit"
    " meet go take bring collect grab print sign review read study practice practise plan organize"
    " organise tidy sort repair replace reserve register apply install back charge pack iron do"
    " make hang fill empty put finish start ask tell remind check look find clear cancel answer"
    " reply respond contact invite thank paint hoover dust shop drop top wrap ship move sell"
    " donate recycle throw research draft edit update follow chase confirm set arrange learn"
)
# Todo verbs that, on their own at the start of a message, are not a task to add.
NOT_TODO_START = word_set("tell find look clear cancel finish update edit")
COMPLETION_VERBS = word_set(
    "finished completed done did wrapped crossed ticked checked knocked sorted"
)
PREPOSITIONS = word_set("with for to at on in about from by of before after")
STOP_WORDS = word_set(
    "the a an my our your his her their this that these those it its task tasks todo todos"
    " to-do item items one ones thing things please to for of on in at list and or with from"
    " off i i've i'm me we just already finally actually also now all is are was were be been"
    " has have had some any so very really too"
)
PRONOUN_REF = re.compile(
    r"^(?:it|that|this|them|those|these|that one|this one|the one|one|something|anything"
    r"|a task|tasks|the task|things|stuff|some tasks|my task|everything else)$"
)
# "paid it", "picked them up": a verb and a pronoun name the task no better than the pronoun.
VERB_AND_PRONOUN = re.compile(
    r"^[a-z'-]+\s+(?:it|that|this|them|those)(?:\s+(?:up|off|out|back|in|away|already|yet"
    r"|after all))?$"
)

# --- Pattern pieces ---------------------------------------------------------------------------

LIST_NAME = r"(?:my|the|our|your)\s+(?:[\w-]{1,20}\s+){0,2}?(?:list|tasks)"
NUMBER = r"(?:(?:the\s+)?(?:tasks?|items?|todos?|number|no\.?)\s*)?(?:number\s*)?#?\d+"
NUMBER_LIST = rf"{NUMBER}(?:(?:\s*(?:,|and|&|\+)\s*(?:and\s+)?|\s+){NUMBER})*"
NUMBERS = re.compile(rf"^{NUMBER_LIST}$")
DONE_STATE = r"(?:done|complete|completed|finished|sorted|handled|taken care of|ticked off)"
NOT_DONE_STATE = (
    r"(?:not done|undone|not complete|not completed|not finished|incomplete|unfinished|pending"
    r"|open|to ?do|to-do|active|unchecked)"
)
PARTICIPLE = r"(?:\w+ed|" + "|".join(sorted(IRREGULAR_PAST, key=len, reverse=True)) + ")"


def _participles(verb: str) -> set[str]:
    stem = verb[:-1] if verb.endswith("e") else verb
    forms = {stem + "ed", verb + verb[-1] + "ed"}
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        forms.add(verb[:-1] + "ied")
    return forms


TODO_PARTICIPLE = "(?:{})".format(
    "|".join(
        sorted(
            {form for verb in TODO_VERBS for form in _participles(verb)}
            | {past for past, verb in IRREGULAR_PAST.items() if verb in TODO_VERBS},
            key=len,
            reverse=True,
        )
    )
)
TASK_SEPARATOR = re.compile(
    r"\s*,\s*(?:and\s+|&\s+)?|\s+and\s+|\s*&\s*|\s*;\s*|\s+as well as\s+|\s+plus\s+"
)
# Things named with "and" that are one thing: "add mac and cheese" adds one task.
ONE_THING = re.compile(
    r"\b(?:mac|macaroni) and cheese|\bfish and chips|\bsalt and pepper"
    r"|\bpeanut butter and jelly|\bcheese and crackers|\bmilk and cookies|\bodds and ends"
    r"|\bbits and bobs|\bpros and cons|\bsweet and sour|\bblack and white|\brock and roll",
    re.I,
)
LIST_SUFFIX = re.compile(
    rf"\s+(?:(?:to|on|onto|in|into|from|off)\s+{LIST_NAME}|on there|to it|on it)$", re.I
)

# --- Command words and their misspellings -------------------------------------------------------

# The words a command starts with, which a one-letter slip ("delte", "remmber") still names.
COMMAND_WORDS = word_set(
    "add remind remember delete remove complete finish mark rename show list reopen uncheck"
    " untick cross clear erase check"
)
# Real words one letter from a command word: never read as its misspelling ("odd socks").
NEAR_COMMAND_WORDS = word_set(
    "odd aid ado ads adds had mad dad bad pad sad lad fad gad wad tad at as an am and rewind"
    " remand reminds rebind remained delate relate dilute remote remote remover removes compete"
    " completes finch finis park dark bark lark mask mart marks mars marc murk mary mire more"
    " maker market renal lost last lust mist fist gist lint lisp liszt lust lists listen"
    " shoe snow slow stow shot shop shew chow shows shown reopens cheek chuck chick chock"
    " checks cheeky gross crass dross cress crosse cries clean cleat clears cleared eraser"
    " arose phrase crease how who why now row low bow cow sow tow wow vow hew mark's lit lid"
    " fist mint hint lift gift rift sift wist sist mask marked marker dele"
)
