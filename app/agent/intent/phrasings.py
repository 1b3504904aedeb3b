"""The phrasings of each kind of request, as regular expressions over the lower-cased clause.

Named groups: `title` (what to add), `item` (what ran out: "Buy …"), `ref` (the tasks meant),
`state` (a past form said of them), `new` (a new title), `words` (what a question asks
about). Every pattern is anchored and has at most one unbounded lazy group before a fixed
tail, so none backtracks more than linearly (measured by `make bench-intent`). A pattern that
begins with its open-ended group comes as `(pattern, ending)`: the ending is the pattern's own
tail, looked for only in the clause's last characters (or words one of which the clause must
contain), and the pattern is tried only when it is there: a long clause would otherwise be
scanned from every word by every such pattern.
"""

from __future__ import annotations

from app.agent.intent.vocabulary import (
    DONE_STATE,
    LIST_NAME,
    NOT_DONE_STATE,
    NUMBER,
    NUMBER_LIST,
    PARTICIPLE,
    TODO_PARTICIPLE,
)

HELP_QUESTION = (
    r"^(?:help|help me|what can you do|what do you do|what are you|who are you|what is this"
    r"|how does (?:this|it) work)$|^(?:how (?:do|can|should|would) (?:i|you|we)|how to)\b"
    r"|^help\b(?! me (?:to )?remember)"
)
DISMISSAL = (
    r"^(?:never ?mind|forget (?:it|that|about it)|scratch that|no worries|cancel that"
    r"|ignore (?:that|me|this)|nothing|no thanks|no thank you)$"
    r"|^(?:don't|dont|do not)\s+(?:add|delete|remove|change|do|mark|touch|rename|edit|complete)\b"
)
LIST_QUESTION = (
    r"^(?:what|what's|whats|what're|which|how many|how much|is there|are there|anything|any"
    r"|am i|are we|did i|did we|have i|have we|do i|is|are|was|were|has|show|list|display"
    r"|view|see|give me|tell me|read me|read out|remind me (?:what|of)|can i see|let me see"
    r"|where are|pull up|get me)\b"
)
LIST_TOPIC = (
    r"\b(?:tasks?|todos?|to-dos?|to do|list|left|remaining|pending|outstanding|open|agenda|plate"
    r"|next|done|finish(?:ed)?|completed?|did (?:i|we)|need to|have to|supposed to|got to"
    r"|still|haven't|everything|rundown|due|planned|accomplish(?:ed)?|get done)\b"
)
LIST_MENTION = r"\b(?:tasks?|todos?|to-dos?|to do|list|left|remaining|pending|outstanding|agenda)\b"

_ABOUT = r"(?:about|for|on|regarding|re|with|to do with|related to|called|named|mentioning|to)"
_SOMETHING = r"(?:anything|something|a task|any tasks?|an? (?:item|todo|to-do|reminder|entry|note))"
_NOTED = r"(?:add|added|put|write|written|wrote|note|noted|jot|jotted|list|listed|save|saved)"
SEARCH = (
    rf"^(?:do|did|have|has)\s+(?:i|we)\s+(?:already\s+|still\s+|ever\s+)?(?:got\s+|have\s+)?"
    rf"{_SOMETHING}\s+{_ABOUT}\s+(?P<words>.+)$",
    rf"^(?:is|are)\s+there\s+{_SOMETHING}\s+{_ABOUT}\s+(?P<words>.+)$",
    rf"^(?:anything|something|any tasks?)\s+(?:on there\s+|(?:on|in) (?:my|the) list\s+)?"
    rf"{_ABOUT}\s+(?P<words>.+)$",
    rf"^(?:did|have|had)\s+(?:i|we)\s+(?:already\s+|ever\s+)?{_NOTED}\s+(?:down\s+)?"
    rf"(?P<words>.+?)(?:\s+(?:down|in|on|to|onto)(?:\s+{LIST_NAME})?|\s+on there)?$",
    r"^(?:is|are)\s+(?P<words>.+?)\s+(?:on|in)\s+(?:my|the|our)\s+(?:[\w-]+\s+)?"
    r"(?:list|tasks|todos?)$",
    r"^(?:do|does)\s+(?:i|we)\s+(?:still\s+|really\s+|even\s+)?(?:need|have|want|got)\s+to\s+"
    r"(?P<words>.+)$",
    r"^(?:do|does)\s+(?:i|we)\s+(?:still\s+|really\s+|even\s+)?need\s+(?P<words>.+)$",
    r"^(?:did|have|has)\s+(?:i|we)\s+(?:already\s+|ever\s+|actually\s+|really\s+)?"
    r"(?P<words>.+)$",
    (
        rf"^(?:is|are|was|were|has|have)\s+(?!there\b)(?P<words>.+?)\s+(?:been\s+|already\s+)*"
        rf"(?P<state>{DONE_STATE}|{PARTICIPLE})$",
        rf"\s(?:{DONE_STATE}|{PARTICIPLE})$",
    ),
)

BY_MISTAKE = r"(?:by mistake|by accident|accidentally|in error|too early|too soon)"

REOPEN = (
    r"^(?:reopen|re-open|uncheck|untick|unmark|un-?complete|un-?check|un-?tick|undo|restore)"
    r"\s+(?P<ref>.+)$",
    rf"^(?:mark|set|flag|change|move)\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?(?:back\s+to\s+)?"
    rf"{NOT_DONE_STATE}$",
    r"^(?:set|move|put|mark|bring|change|add|turn)\s+(?P<ref>.+?)\s+back"
    r"(?:\s+(?:to|on|onto|in|into|as)\b.*)?$",
)
# Said of the task rather than asked of the list: read after the requests that start with a verb.
REOPEN_STATE = (
    (
        r"^(?P<ref>.+?)\s+(?:isn't|isnt|is not|aren't|arent|are not|wasn't|was not|weren't"
        r"|hasn't been|has not been|haven't been|have not been)\s+(?:actually\s+|really\s+)?"
        rf"(?P<state>{DONE_STATE}|{PARTICIPLE})(?:\s+yet)?(?:\s+after all)?$",
        rf"(?:n't|not)\s+(?:actually\s+|really\s+)?(?:been\s+)?(?:{DONE_STATE}|{PARTICIPLE})"
        r"(?:\s+yet)?(?:\s+after all)?$",
    ),
    r"^(?:i|we)\s+(?:didn't|didnt|did not|haven't|havent|have not|hadn't|never)\s+"
    r"(?:actually\s+|really\s+|yet\s+)?(?P<ref>.+?)(?:\s+yet|\s+after all)?$",
    r"^(?:(?:i|we)\s+)?(?:accidentally\s+)?(?:marked|ticked|checked|crossed|completed)\s+"
    rf"(?:off\s+)?(?P<ref>.+?)(?:\s+(?:as\s+)?(?:done|complete|completed|off))?\s+{BY_MISTAKE}$",
    r"^not (?:done|finished)(?: yet)?\s*:\s*(?P<ref>.+)$",
)
_NEW_TITLE_SEPARATOR = (
    r"(?:\s*:\s*|\s+[-\u2013\u2014]\s+|\s*(?:\u2192|->|=>)\s*|\s+to\s+(?:say|read)\s*:?\s+"
    r"|\s+(?:so\s+(?:that\s+)?)?(?:it|that it)\s+(?:says|reads)\s*:?\s+|\s+(?:to|into|as)\s+)"
)
RENAME = (
    r"^(?:rename|change|update|edit|reword|retitle|modify|alter|amend)\s+"
    r"(?:the\s+(?:title|name|text|wording)\s+(?:of|on|for)\s+)?"
    rf"(?P<ref>.+?){_NEW_TITLE_SEPARATOR}(?P<new>.+)$",
    r"^(?:fix|correct)\s+(?:the\s+|a\s+)?(?:typos?|spelling|title|name|wording)\s+"
    rf"(?:in|of|on|for)\s+(?P<ref>.+?){_NEW_TITLE_SEPARATOR}(?P<new>.+)$",
    # "task 12 should be call mom on sunday": a task named by its number "should be" a title.
    rf"^(?P<ref>{NUMBER})\s+(?:should|must|needs to|has to|ought to|is supposed to"
    r"|was supposed to)\s+(?:(?:actually|now|really|instead)\s+)*(?:be called|be named"
    r"|be renamed to|be changed to|say|read|be)\s*:?\s+(?P<new>.+?)(?:\s+instead)?$",
    (
        r"^(?P<ref>.+?)\s+(?:should|must|needs to|has to|ought to)\s+"
        r"(?:say|read|be called|be named|be renamed to|be(?=\s+[\"']))\s*:?\s+(?P<new>.+)$",
        (" should ", " must ", " needs to ", " has to ", " ought to "),
    ),
    rf"^make\s+(?P<ref>{NUMBER}|\"[^\"]+\"|'[^']+')\s+(?:say\s+|read\s+|be\s+|into\s+)?"
    r"(?P<new>.+)$",
    r"^(?:replace|swap)\s+(?P<ref>.+?)\s+(?:with|for)\s+(?P<new>.+)$",
)
_SUBJECT = r"(?:(?:i|we)(?:'ll|'ve|'d|\s+will|\s+have|\s+had)?\s+)?"
ADD = (
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
COMPLETE = (
    (
        rf"^(?:mark|set|flag|tick|check|consider)\s+(?P<ref>.+?)\s+(?:as\s+)?{DONE_STATE}$",
        rf"\s{DONE_STATE}$",
    ),
    r"^(?:complete|finish|close|check off|tick off|cross off|strike off|mark off|knock off)\s+"
    r"(?P<ref>.+)$",
    rf"^(?:cross|tick|check|mark|knock)\s+(?P<ref>.+?)\s+off(?:\s+{LIST_NAME})?$",
    rf"^(?:tick|check)\s+(?P<ref>{NUMBER_LIST})$",
    r"^tick\s+(?P<ref>.+)$",
    r"^(?:(?:i'm|i am|we're|we are|i've|i have|all|now|finally)\s+)*(?:done|finished|through)"
    r"\s+with\s+(?P<ref>.+)$",
    r"^(?:done|finished|completed)\s*[:\-\u2013]\s*(?P<ref>.+)$",
    rf"^(?:done|finished)\s+(?P<ref>{NUMBER_LIST})$",
    rf"^(?P<ref>{NUMBER_LIST})\s+(?:(?:is|are)\s+)?(?:now\s+)?{DONE_STATE}$",
)
_DONE_MARK = r"(?:done|finished|complete|completed|\u2713|\u2714)"
COMPLETE_STATE = (
    (
        rf"^(?P<ref>.+?)\s*(?::|\s[-\u2013\u2014])\s*{_DONE_MARK}$",
        rf"(?::|\s[-\u2013\u2014])\s*{_DONE_MARK}$",
    ),
    (
        r"^(?P<ref>.+?)(?:'s|'re|\s+is|\s+are|\s+was|\s+were|\s+has been|\s+have been|'s been"
        r"|\s+got)\s+(?:now\s+|all\s+|finally\s+|already\s+)?"
        rf"(?P<state>{DONE_STATE}|{PARTICIPLE})(?:\s+(?:up|out|off|back|in|away))?$",
        rf"\s(?:{DONE_STATE}|{PARTICIPLE})(?:\s+(?:up|out|off|back|in|away))?$",
    ),
    # "insurance renewed!": a report without its verb, so only with a verb tasks start with.
    (
        rf"^(?P<ref>.+?)\s+(?:(?:all|now)\s+)?(?P<state>{DONE_STATE}|{TODO_PARTICIPLE})$",
        rf"\s(?:{DONE_STATE}|{TODO_PARTICIPLE})$",
    ),
)
DELETE = (
    r"^(?:delete|remove|erase|drop(?!\s+off\b)|get rid of|cancel|scratch|ditch|nix|toss|strike"
    r"|kill|bin|trash|axe|wipe|scrap|chuck|forget about|forget|never ?mind(?: about)?|clear out"
    r"|clear|discard|dump)\s+"
    rf"(?P<ref>.+?)(?:\s+(?:from|off)\s+{LIST_NAME})?$",
    rf"^take\s+(?P<ref>.+?)\s+(?:off|out of)(?:\s+{LIST_NAME})?$",
    (
        r"^(?P<ref>.+?)\s+can\s+(?:come off|go|be (?:removed|deleted|dropped|scrapped))"
        rf"(?:\s+(?:from\s+|off\s+)?{LIST_NAME})?$",
        rf"\scan\s+(?:come off|go|be \w+)(?:\s+(?:from\s+|off\s+)?{LIST_NAME})?$",
    ),
    r"^(?:i|we)\s+(?:don't|dont|do not|no longer|won't|will not|wont)\s+(?:really\s+|even\s+)?"
    r"need(?:\s+to)?\s+(?P<ref>.+?)(?:\s+any\s?more)?$",
    r"^no\s+(?:more\s+)?need\s+(?:to\s+|for\s+)?(?P<ref>.+)$",
    r"^(?:stop|quit|no more)\s+reminding me\s+(?:about\s+|to\s+|of\s+)?(?P<ref>.+)$",
)
PAST_REPORT = (
    r"^(?P<subject>(?:i|we|i've|we've)\s+)?(?:(?:have|had|just|already|finally|actually|also|now"
    r"|totally|officially|successfully)\s+)*(?P<verb>[a-z'-]+)\s+(?P<rest>.+)$"
)
MISSING_NEW_TITLE = r"^(?:rename|edit|change|update|reword|retitle|modify)\s+(.+)$"
DONE_WITHOUT_TASK = (
    r"^(?:done|finished|complete|completed|all done|i'm done|i am done|we're done|it's done"
    r"|that's done|that is done|mark (?:it )?(?:as )?done|mark done)$"
)
YES_NO_QUESTION = (
    r"^(?:is|are|was|were|has|have|had|do|does|can|could|should|would|will|shall)\b"
    r"|^did (?:i|we|you|he|she|they)\b"  # "did the laundry" reports, "did I …?" asks
)
# Which tasks a listing request means: the first cue found decides.
STATUS_CUES = (
    (
        "pending",
        r"\b(?:haven't|have not|havent|not (?:yet )?(?:done|finished|completed)|unfinished"
        r"|incomplete|undone|am i done|are we done|yet to)\b",
    ),
    ("all", r"\b(?:including|include|too|as well|both|everything|whole|entire)\b"),
    (
        "completed",
        r"\b(?:done|finished|completed?|did i|did we|i did|get done|got done|accomplished"
        r"|achieved|crossed off|ticked off|checked off)\b",
    ),
    (
        "pending",
        r"\b(?:left|remaining|pending|open|outstanding|still|next|need to|have to|supposed to"
        r"|got to|plate|to do|due|upcoming|unchecked|agenda)\b",
    ),
)
