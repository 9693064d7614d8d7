"""Dead letters: queue entries that cannot be run, kept with their reason instead of crashing
a worker or being lost.

An entry that cannot be decoded, is over ``AGENTCRON_MESSAGE_MAX_BYTES``, has a refused content
type (pickle, YAML) or names an unknown task is taken off its queue by the worker and handed to
:func:`dead_letter`: stored in the ledger's bounded ``dead_letters`` table, logged once, counted
(``agentcron_dead_letters_total``) and alerted. ``agentcron dead-letters`` lists, requeues and
purges them.
"""

from agentcron.deadletters.classify import KINDS, PoisonEntry, decode_entry, json_loads, kind_of, preview
from agentcron.deadletters.sink import (
    DeadLetterSink,
    dead_letter,
    default_sink,
    max_message_bytes,
    set_default_sink,
    sink_from_settings,
)
from agentcron.deadletters.store import DeadLetter, DeadLetterStore

__all__ = ["KINDS", "DeadLetter", "DeadLetterSink", "DeadLetterStore", "PoisonEntry",
           "dead_letter", "decode_entry", "default_sink", "json_loads", "kind_of",
           "max_message_bytes", "preview", "set_default_sink", "sink_from_settings"]
