"""The built-in prompt-injection rules: an id, a weight, a regex and the trigger words that gate it.

Rules run on normalised text (zero-width characters removed, NFKC, casefolded); a space in a
pattern stands for any run of whitespace. A rule's regex runs only when its ``triggers`` hold: that
pre-check (a set intersection with the text's words) is what keeps a benign prompt at microseconds.

Trigger syntax: alternatives separated by ``;``; an alternative is groups joined by ``&``, and
holds when the text has one word of each group (``|`` separates a group's words); a word starting
with ``=`` is a substring of the text instead (``=<!--``). Words are runs of ``[a-z0-9_]`` (and any
non-ASCII letters). ``tool_only`` rules look at tool output only (role ``tool``, ``tool_result``
parts), where imperative text addressed to the assistant is itself suspicious.

Weights are calibrated so that one strong phrasing (``ignore previous instructions``) reaches the
default threshold of 0.5 alone, while weak signals (``from now on you``, an ``assistant:`` line,
``stay in character``) need company: score = 1 - Π(1 - w) over the rules matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Trigger:
    """Holds when the text has a word of each of ``words`` and a substring of each of ``literals``."""

    words: tuple[frozenset[str], ...]
    literals: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    weight: float
    pattern: re.Pattern[str]
    triggers: tuple[Trigger, ...] = ()
    """One must hold for the regex to run; empty: always run."""
    tool_only: bool = False


def compile_phrase(source: str, flags: int = 0) -> re.Pattern[str]:
    """A phrase regex in which each space matches any run of whitespace."""
    return re.compile(source.replace(" ", r"\s+"), flags)


def parse_triggers(spec: str) -> tuple[Trigger, ...]:
    """``"a|b & c; =<!--"`` -> Trigger(words=({a, b}, {c})), Trigger(literals=((<!--,),))."""
    triggers: list[Trigger] = []
    for product in spec.split(";"):
        words: list[frozenset[str]] = []
        literals: list[tuple[str, ...]] = []
        for group in product.split("&"):
            items = [w.strip() for w in group.split("|") if w.strip()]
            if all(w.startswith("=") for w in items):
                literals.append(tuple(w[1:] for w in items))
            elif any(w.startswith("=") for w in items):
                raise ValueError(f"trigger group {group!r} mixes words and substrings")
            else:
                words.append(frozenset(items))
        triggers.append(Trigger(tuple(words), tuple(literals)))
    return tuple(triggers)


def _rule(id_: str, weight: float, source: str, triggers: str, *, tool_only: bool = False) -> Rule:
    return Rule(id_, weight, compile_phrase(source), parse_triggers(triggers), tool_only)


_VERB = r"(?:ignore|disregard|forget|override|bypass|neglect|abandon|discard|set aside|throw out)"
_QUAL = r"(?:previous|prior|above|preceding|earlier|foregoing|initial|original|system|old|safety|ethical|content)"
_NOUN = (r"(?:instructions?|rules?|prompts?|directions?|directives?|guidelines?|commands?|programming|training|"
         r"constraints?|restrictions?|guardrails?|polic(?:y|ies)|context|filters?)")
_SYSPROMPT = (r"(?:system (?:prompt|message|instructions?)|(?:initial|hidden|original|secret|internal|first) "
              r"(?:prompt|instructions?)|pre-?prompt|instructions you (?:were|have been) given|"
              r"(?:prompt|instructions) (?:above|you were given))")
_MODES = r"(?:jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|unethical|amoral|evil)"

RULES: tuple[Rule, ...] = (
    # -- overriding the instructions --------------------------------------------------------------
    _rule("override.ignore_previous", 0.9,
          rf"\b{_VERB} (?:(?:all|any|every|each) (?:of )?)?(?:(?:the|your|my|these|those) )?{_QUAL} (?:\S+ ){{0,2}}?"
          rf"{_NOUN}\b"
          rf"|\b{_VERB} (?:all|any|every) (?:of )?(?:(?:the|your|these|those) )?(?:\S+ )?{_NOUN}\b"
          rf"|\b{_VERB} your (?:\S+ ){{0,2}}?{_NOUN}\b",
          "ignore|disregard|forget|override|bypass|neglect|abandon|discard|aside|throw & instruction|instr"
          "uctions|rule|rules|prompt|prompts|direction|directions|directive|directives|guideline|guideline"
          "s|command|commands|programming|training|constraint|constraints|restriction|restrictions|guardra"
          "il|guardrails|policy|policies|context|filter|filters"),
    _rule("override.forget_everything", 0.8,
          r"\b(?:ignore|disregard|forget) (?:about )?(?:everything|all|anything|whatever|what) (?:that )?"
          r"(?:you(?:'ve| have| were| was)? (?:been )?(?:told|said|instructed|given)|(?:(?:written|said|stated|"
          r"mentioned) )?(?:above|before|previously|so far|earlier|prior))\b",
          "ignore|disregard|forget & everything|all|anything|whatever|what"),
    _rule("override.new_instructions", 0.45,
          r"\b(?:new|updated|revised|real|actual|true) (?:system )?(?:instructions?|directives?|system prompt|task)\b",
          "new|updated|revised|real|actual|true & "
          "instruction|instructions|directive|directives|prompt|task"),
    _rule("override.disable_safety", 0.7,
          r"\b(?:disable|turn off|deactivate|remove|switch off|lift|drop|suspend) (?:all )?(?:of )?your (?:\S+ )?"
          r"(?:filters?|safety|guardrails?|restrictions|content polic\w*|censorship|moderation|ethical \S+|limits)\b",
          "disable|turn|deactivate|remove|switch|lift|drop|suspend & your"),
    _rule("override.your_new_role", 0.75,
          r"\byour (?:new|real|actual|true|updated|only) (?:instructions?|directives?|rules|task|role|objective|goal|"
          r"purpose|mission|persona) (?:is|are|:|will be|from now)",
          "your & new|real|actual|true|updated|only"),
    _rule("override.from_now_on", 0.45,
          r"\b(?:from now on|from this point (?:on|forward)|for the rest of (?:this|the) conversation),? "
          r"(?:you|your|you'll|act|respond|answer|reply|always|never|ignore|only|pretend)\b",
          "from & now|point|rest"),
    _rule("override.precedence", 0.7,
          r"\b(?:this|these|the following|my|the new) (?:instructions?|rules|message|prompt|directives?) "
          r"(?:take|takes|has|have) (?:precedence|priority)"
          r"|\b(?:overrides?|supersedes?|replaces?) (?:all |any )?(?:previous|prior|other|your|earlier|existing) "
          r"(?:instructions?|rules|directives?|prompts?|guidelines)",
          "precedence|priority|override|overrides|supersede|supersedes|replace|replaces"),
    _rule("override.authority", 0.6,
          r"\b(?:system|admin|administrator|developer|root|sudo) override\b"
          r"|\b(?:message|instructions?|command) from (?:the|your) (?:developers?|creators?|administrators?|admins?|"
          r"system|openai|anthropic)\b"
          r"|\bi(?: am|'m) your (?:developer|creator|administrator|admin|owner|programmer|operator|maker)s?\b",
          "override; message|instruction|instructions|command & from; your & developer|creator|administrat"
          "or|admin|owner|programmer|operator|maker|developers|creators|administrators|admins|owners|progr"
          "ammers|operators|makers"),
    # -- exfiltrating the system prompt -----------------------------------------------------------
    _rule("exfil.system_prompt", 0.85,
          r"\b(?:reveal|print|repeat|show|display|output|dump|leak|expose|disclose|share|give|tell|recite|paste|"
          r"write|spell|list|return|provide|send|what(?:'s| is| are| was| were)) (?:me |us )?(?:out |back |"
          r"again )?(?:(?:all|exactly|verbatim|word for word) )?(?:of )?(?:your|its) (?:(?:full|entire|complete|"
          r"exact|original|initial|hidden|secret|internal|verbatim|whole|real) )*" + _SYSPROMPT,
          "your|its & prompt|preprompt|instruction|instructions|message & reveal|print|repeat|show|display"
          "|output|dump|leak|expose|disclose|share|give|tell|recite|paste|write|spell|list|return|provide|"
          "send|what"),
    _rule("exfil.the_system_prompt", 0.7,
          r"\b(?:reveal|print|repeat|output|dump|leak|disclose|recite|show me|tell me|display|spell out|write out|"
          r"copy) (?:out )?(?:(?:all|exactly|verbatim|word for word) )?(?:of )?(?:the|this) (?:(?:full|entire|"
          r"complete|exact|original|initial|hidden|secret|internal|verbatim|whole|real) )*" + _SYSPROMPT,
          "the|this & prompt|preprompt|instruction|instructions|message & "
          "reveal|print|repeat|output|dump|leak|disclose|recite|show|tell|display|spell|write|copy"),
    _rule("exfil.repeat_above", 0.45,
          r"\b(?:repeat|print|output|copy|recite|write out|reproduce) (?:back )?(?:all (?:of )?|everything |"
          r"verbatim )?(?:the |your )?(?:text|words|content|lines|messages?|instructions?|everything) "
          r"(?:above|before this|preceding|prior to this|that came before)",
          "repeat|print|output|copy|recite|write|reproduce & above|before|preceding|prior|came"),
    _rule("exfil.starts_with_you_are", 0.6,
          r"\b(?:starting|beginning|that starts?|which starts?) with (?:the (?:phrase|words?) )?[\"'“”]?you are\b",
          "starting|beginning|starts|start & you & are"),
    _rule("exfil.what_were_you_told", 0.7,
          r"\bwhat (?:were|was|are|have) you (?:been )?(?:told|instructed|programmed) (?:to do )?"
          r"(?:before|at the start|initially|by your (?:developers?|creators?))",
          "what & told|instructed|programmed"),
    # -- jailbreak personas -----------------------------------------------------------------------
    _rule("persona.dan", 0.9,
          r"\b(?:you are|you're|act as|acting as|become|pretend to be|roleplay as|role-play as|play the role of|"
          r"you will be|you will act as|you'll be|you'll act as|respond as|answer as|reply as) (?:now )?(?:an? |"
          r"the )?(?:dan|stan|dude|aim|evilbot|betterdan|antigpt|devmode|mongo tom|ucar)\b"
          r"|\bdo anything now\b",
          "dan|stan|dude|aim|evilbot|betterdan|antigpt|devmode|ucar|tom; anything & now"),
    _rule("persona.mode", 0.8, rf"\b{_MODES} mode\b",
          "mode & jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|unethical|amoral|evil"),
    _rule("persona.developer_mode", 0.75,
          r"\b(?:chatgpt|gpt|ai|assistant|model|llm|claude|bot|you) (?:with|in|are in|are now in|'re in|'re now in|"
          r"enter|entering|now in|switch(?:ed)? to|will simulate) (?:the )?(?:developer|dev|god|debug|admin|sudo|root|"
          r"maintenance) mode\b",
          "mode & developer|dev|god|debug|admin|sudo|root|maintenance"),
    _rule("persona.mode_enabled", 0.4,
          r"\b(?:developer|dev|god|sudo|debug) mode (?:enabled|activated|output|response|is (?:now )?(?:enabled|on|"
          r"active))\b",
          "mode & developer|dev|god|sudo|debug"),
    _rule("persona.jailbroken", 0.85,
          r"\byou (?:are|'re|have been|were|are now|'ve been) (?:now )?(?:jailbroken|freed|liberated|unchained|"
          r"unleashed|unshackled|unbound|released from)\b"
          r"|\b(?:broken|break|breaking) free (?:of|from) (?:the )?(?:typical |usual )?(?:confines|restrictions|rules|"
          r"limitations|chains)\b",
          "jailbroken|freed|liberated|unchained|unleashed|unshackled|unbound|released; free & "
          "broken|break|breaking"),
    _rule("persona.unrestricted_ai", 0.8,
          r"\b(?:act|acting|behave|respond|answer|reply|operate|function|roleplay|pretend to be|you are|you're|"
          r"become|simulate|be) (?:now )?(?:as |like )?(?:an? |the )?(?:\S+ )?(?:unrestricted|unfiltered|uncensored|"
          r"unaligned|amoral|unethical|unbound|unlimited|lawless|rogue|evil) (?:ai|assistant|model|chatbot|llm|"
          r"language model|bot|version|entity|character|persona)\b"
          r"|\b(?:ai|assistant|model|chatbot|llm|bot) (?:without|with no|that has no|free of) (?:any )?(?:\S+ )?"
          r"(?:restrictions|filters|limits|limitations|rules|guidelines|censorship|ethics|morals|content policy)\b",
          "unrestricted|unfiltered|uncensored|unaligned|amoral|unethical|unbound|unlimited|lawless|rogue|e"
          "vil; ai|assistant|model|chatbot|llm|bot & without|no|free"),
    _rule("persona.no_restrictions", 0.8,
          r"\b(?:pretend|imagine|act as if|act like|assume|suppose|behave as if) (?:that )?(?:you|you're|you've|your|"
          r"the ai|the assistant|the model)\b(?: \S+){0,4}? (?:no|zero|"
          r"without any|without|free of|free from|not bound by|no longer bound by|not subject to) (?:\S+ ){0,2}?"
          r"(?:restrictions|limitations|rules|filters|guidelines|censorship|ethics|morals|moral|ethical|boundaries|"
          r"content polic\w*|safety (?:guidelines|filters|rules|policies))\b",
          "pretend|imagine|act|assume|suppose|behave & no|zero|without|free|bound|subject"),
    _rule("persona.not_bound", 0.8,
          r"\b(?:not|no longer|never|aren't|are not|isn't|is not) (?:be )?(?:bound|restricted|limited|constrained|"
          r"governed) by (?:any |your |the |openai's |anthropic's )?(?:\S+ )?(?:rules|guidelines|polic(?:y|ies)|"
          r"restrictions|openai|anthropic|ethics|morals|content policy|safety)\b",
          "bound|restricted|limited|constrained|governed & by"),
    _rule("persona.no_longer", 0.75,
          r"\byou are no longer (?:\S+ ){0,3}?(?:an? ai|ai|an? assistant|assistant|chatgpt|claude|"
          r"a (?:language )?model|bound|restricted|limited|required to|obligated)\b"
          r"|\b(?:switch|change) (?:your )?(?:role|persona|personality|identity) to\b",
          "longer & no; switch|change & role|persona|personality|identity"),
    _rule("persona.you_are_now", 0.3,
          r"\byou(?: are|'re) now (?:an? |the |my |in |called |named )", "you & now"),
    _rule("persona.stay_in_character", 0.4,
          r"\b(?:stay|remain|keep) in character\b|\b(?:never|don't|do not) (?:break|leave|drop) character\b",
          "character"),
    _rule("persona.refusal_suppression", 0.35,
          r"\b(?:never|don't|do not|you can't|you cannot|must not|will not|won't|can't) (?:ever )?(?:refuse|decline|"
          r"say (?:no|you can't|that you can't|i'm sorry|sorry)|add (?:any )?(?:warnings?|disclaimers?)|warn (?:me|"
          r"the user) about)\b",
          "refuse|decline|warnings|warning|disclaimers|disclaimer|warn|sorry; say & "
          "never|don|not|can|cannot|won"),
    # -- fake role markers and delimiters ---------------------------------------------------------
    _rule("marker.chat_template", 0.8,
          r"<\|(?:im_start|start_header_id)\|>\s*(?:system|assistant|user|developer|tool)\b"
          r"|<\|(?:system|assistant|user)\|>",
          "im_start|start_header_id; system|assistant|user & =<|"),
    _rule("marker.chat_token", 0.3,
          r"<\|(?:im_start|im_end|im_sep|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|>",
          "im_start|im_end|im_sep|endoftext|eot_id|start_header_id|end_header_id|begin_of_text"),
    _rule("marker.inst", 0.6, r"\[/?inst\]|<</?sys>>", "inst; sys & =<<"),
    _rule("marker.xml_role", 0.55,
          r"</?(?:system|system_prompt|system-prompt|sys|instructions?|admin|developer)(?:\s[^>]{0,80})?>",
          "system|system_prompt|sys|instruction|instructions|admin|developer & =<"),
    _rule("marker.role_heading", 0.6,
          r"(?m)^[^\S\n]*(?:#{1,6}|\*\*|\[)[^\S\n]*(?:system(?:[^\S\n]+(?:prompt|message|override))?|new[^\S\n]+"
          r"instructions|admin(?:istrator)?|developer)[^\S\n]*(?::|\]|\*\*:|:\*\*)",
          "system|instructions|admin|administrator|developer & =#|=**|=["),
    _rule("marker.system_line", 0.35, r"(?m)^[^\S\n]*(?:system|sys)[^\S\n]*:[^\S\n]*\S", "system|sys & =:"),
    _rule("marker.assistant_line", 0.35,
          r"(?m)^[^\S\n]*(?:assistant|ai|gpt|chatgpt|claude|model)[^\S\n]*:",
          "assistant|ai|gpt|chatgpt|claude|model & =:"),
    # -- hidden instructions (tool output, pasted documents) ---------------------------------------
    _rule("hidden.important_ignore", 0.7,
          r"\b(?:important|urgent|attention|note|notice|warning|system|admin|critical|priority)\b(?: (?:ai|assistant|"
          r"agent|model|llm|bot)s?)?[^\S\n]*[!:\-]+\s*"
          r"(?:\S+ ){0,3}?(?:ignore|disregard|forget|override|new instructions|instead of (?:answering|summari[sz]ing|"
          r"doing)|(?:the )?(?:assistant|ai|model|agent) (?:must|should|will))\b",
          "important|urgent|attention|note|notice|warning|system|admin|critical|priority & "
          "ignore|disregard|forget|override|new|instead|assistant|ai|model|agent"),
    _rule("hidden.note_to_ai", 0.7,
          r"\b(?:note|message|instructions?|attention|memo|reminder|directive) (?:to|for) (?:the |any |all )?(?:ai|"
          r"assistant|model|llm|agent|chatbot|language model|bot)s?\b"
          r"|\bwhen (?:you|the (?:ai|assistant|model|agent|llm)) (?:read|reads|see|sees|process|processes|summari[sz]e|"
          r"summari[sz]es|encounter|encounters|parse|parses) this\b"
          r"|\bif you are an? (?:ai|assistant|language model|llm|agent|bot)\b",
          "note|message|instruction|instructions|attention|memo|reminder|directive & "
          "ai|assistant|model|llm|agent|chatbot|bot|ais|assistants|models|agents|llms|bots; when & read|re"
          "ads|see|sees|process|processes|summarize|summarise|summarizes|summarises|encounter|encounters|p"
          "arse|parses & this; if & ai|assistant|llm|agent|bot|model"),
    _rule("hidden.conceal_from_user", 0.5,
          r"\b(?:do not|don't|never|without) (?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|reveal(?:ing)?|"
          r"notify(?:ing)?|alert(?:ing)?|let(?:ting)?|show(?:ing)?) (?:this to )?(?:the |this )?user\b",
          "user & tell|telling|inform|informing|mention|mentioning|reveal|revealing|notify|notifying|alert"
          "|alerting|let|letting|show|showing"),
    _rule("hidden.html_comment", 0.5,
          r"<!--(?:(?!-->)[\s\S]){0,800}?\b(?:ignore|disregard|assistant|ai|llm|instructions?|prompt|you must|"
          r"you should|system)\b",
          "=<!--"),
    _rule("hidden.markdown_comment", 0.4, r"(?m)^[^\S\n]*\[(?://|comment|hidden|note)\]:[^\S\n]*[#<]", "=]:"),
    _rule("hidden.css", 0.25,
          r"style\s*=\s*[\"'][^\"']{0,200}?(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0"
          r"(?:px|em|pt)?\s*[;\"']|opacity\s*:\s*0\s*[;\"']|color\s*:\s*(?:white|#fff(?:fff)?|transparent))",
          "style & display|visibility|font|opacity|color"),
    _rule("exfil.markdown_image", 0.7,
          r"!\[[^\]]{0,100}\]\(https?://[^)\s]{0,300}[?&][\w-]{1,30}=(?:\{|\[|<|%7b|%5b|%3c|\$|\(\w)",
          "=]("),
    _rule("tool.instruction_to_ai", 0.3,
          r"\b(?:ai|assistant|model|llm|chatbot|agent|language model|claude|chatgpt|gpt|copilot|bot)s?\b[^.\n]{0,40}?"
          r"\b(?:must|shall|needs? to|has to|have to|is (?:required|instructed|asked|expected) to|are (?:required|"
          r"instructed) to|will now|now must|should now|should instead)\b",
          "ai|assistant|model|llm|chatbot|agent|claude|chatgpt|gpt|copilot|bot|ais|assistants|models|agent"
          "s|bots & must|shall|need|needs|has|have|required|instructed|asked|expected|will|should",
          tool_only=True),
    _rule("tool.vocative", 0.4,
          r"(?:^|[.!?:;\n]\s*)(?:hey |hi |dear |ok |okay )?(?:ai|assistant|chatbot|agent|model|llm|claude|chatgpt|gpt)"
          r"\s*,\s*(?:please |you must |you should |you need to |now |immediately )?"
          r"(?:ignore|disregard|do|send|call|run|approve|delete|forward|transfer|execute|open|write|reply|respond|tell|say|include|output|grant|pay|"
          r"refund|book|buy|share|email|post|upload)\b",
          "ai|assistant|chatbot|agent|model|llm|claude|chatgpt|gpt & =,",
          tool_only=True),
    _rule("tool.send_data", 0.3,
          r"\b(?:send|email|forward|post|upload|transmit|exfiltrate|leak)\b(?: \S+){0,8}? (?:to|at|via) "
          r"(?:https?://|[\w.+-]+@[\w-]+\.|the (?:following|this) (?:url|address|endpoint|email|webhook))",
          "send|email|forward|post|upload|transmit|exfiltrate|leak & to|at|via",
          tool_only=True),
)

OBFUSCATION_RULES: dict[str, float] = {
    "obfuscation.zero_width": 0.35,
    "obfuscation.base64": 0.6,
    "obfuscation.leetspeak": 0.3,
}
"""Rules that are not a regex over the text: zero-width characters between letters; a base64 blob
whose decoded text matched a rule; leetspeak whose plain-letter reading matched a rule the text
itself did not."""

RULE_IDS: frozenset[str] = frozenset(r.id for r in RULES) | frozenset(OBFUSCATION_RULES)
