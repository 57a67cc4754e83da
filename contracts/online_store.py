"""The online feature store's layout in Redis: what the feature writer publishes and serving reads.

Under a namespace ``<ns>`` (``FEATURE_NAMESPACE``, default ``features``)::

    <ns>:current                        id of the published version (the pointer)
    <ns>:v<id>:card:<card_id>           JSON of features.CardFeatures.to_dict()
    <ns>:v<id>:terminal:<terminal_id>   JSON of features.TerminalFeatures.to_dict()
    <ns>:v<id>:meta                     hash: as_of_min/max (epoch ms), written_at, counts, feature set
    <ns>:versions                       sorted set of versions not yet expired (score: creation time)
    <ns>:version_seq                    counter handing out version ids
    <ns>:lock                           held by the writer run in progress (one writer at a time)

A version is written completely before one ``SET`` of the pointer publishes it, so a reader never
sees a half-written set. Readers resolve the pointer and read their keys in one round trip with
:data:`READ_SCRIPT` (a read-only Lua script; on Redis Cluster the keys of one lookup would span
slots, so a cluster deployment would cache the pointer and use per-slot ``MGET`` instead).
"""

from __future__ import annotations

from typing import Final

DEFAULT_NAMESPACE: Final = "features"

#: Pointer + keys in one round trip. KEYS[1] = pointer; ARGV[1] = "<ns>"; ARGV[2..] = key suffixes
#: (:func:`card_suffix`, :func:`terminal_suffix`). Returns {version or false, value or false, ...}.
READ_SCRIPT: Final = """
local v = redis.call('GET', KEYS[1])
if not v then return {false} end
local prefix = ARGV[1] .. ':v' .. v .. ':'
local out = {v}
for i = 2, #ARGV do
  out[i] = redis.call('GET', prefix .. ARGV[i])
end
return out
"""

#: Delete the lock KEYS[1] only when it still holds this run's token ARGV[1].
RELEASE_LOCK_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def card_suffix(card_id: str) -> bytes:
    """The part of a card's key after the version prefix (a :data:`READ_SCRIPT` argument)."""
    return b"card:" + card_id.encode()


def terminal_suffix(terminal_id: str) -> bytes:
    return b"terminal:" + terminal_id.encode()


class OnlineLayout:
    """Key names of one namespace of the online store."""

    def __init__(self, namespace: str) -> None:
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"invalid feature namespace {namespace!r}")
        self.namespace = namespace
        self.pointer = f"{namespace}:current"
        self.versions = f"{namespace}:versions"
        self.seq = f"{namespace}:version_seq"
        self.lock = f"{namespace}:lock"

    def prefix(self, version: str) -> str:
        return f"{self.namespace}:v{version}:"

    def meta(self, version: str) -> str:
        return f"{self.prefix(version)}meta"

    def card(self, version: str, card_id: str) -> str:
        return f"{self.prefix(version)}card:{card_id}"

    def terminal(self, version: str, terminal_id: str) -> str:
        return f"{self.prefix(version)}terminal:{terminal_id}"
