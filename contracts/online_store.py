"""The online feature state in Redis: each card's and terminal's recent transactions.

Serving reads a card's and a terminal's aggregates as of a transaction's own time and appends the
transaction in **one atomic round trip** (:data:`APPLY_SCRIPT`), so the 2nd attempt of a burst sees
the 1st. The online applier (``python -m ml apply-online``) appends what reaches the platform
through Kafka with the same script and applies fraud labels (:data:`LABEL_SCRIPT`,
:data:`FRAUD_SCRIPT`); the feature writer seeds the same keys from Gold (a merge: every write is
idempotent by ``transaction_id``, nothing newer is ever overwritten).

Keys of namespace ``<ns>`` (``FEATURE_NAMESPACE``); ``{...}`` is a Redis Cluster hash tag, so the keys of
one card (and of one terminal) live on one shard::

    <ns>:{c:<card_id>}:ev      hash   transaction_id -> "<event ms>:<terminal_id>" (appended once)
    <ns>:{c:<card_id>}:t       zset   JSON events [id, ms, cents, terminal, lat, lon, device, country]
                                      by event time (ms): a read returns them without a lookup
    <ns>:{c:<card_id>}:lbl     hash   transaction_id -> label time (ms) of a label that came
                                      before its transaction
    <ns>:{t:<terminal_id>}:t   zset   transaction_id by event time (ms)
    <ns>:{t:<terminal_id>}:f   zset   frauds: transaction_id by event time (ms)
    <ns>:{t:<terminal_id>}:k   hash   frauds: transaction_id -> when the fraud became known,
                                      max(label, event) ms

Reads use strictly earlier events (``event_ms < t``), so a repeat of a transaction (same id) reads
what its first attempt read and appends nothing. Every append trims its keys to the newest event
minus :data:`RETENTION_MS` (the longest window, terminal 90 days, plus one day of lateness: a card's
events are kept that long too, so a late label still finds its transaction's terminal) and sets
their time to live to the same span. One lookup touches a card's and a terminal's keys, which on a
Redis Cluster live on two shards: there the script runs once per shard (card part, terminal part).
"""

from __future__ import annotations

from typing import Final

DEFAULT_NAMESPACE: Final = "features"
MS_PER_DAY: Final = 86_400_000
#: Events older than the newest one by more than this are dropped (longest window + lateness).
RETENTION_MS: Final = 91 * MS_PER_DAY
#: Keys of one transaction in :data:`APPLY_SCRIPT`, in this order.
KEYS_PER_TXN: Final = 6
#: Arguments of one transaction in :data:`APPLY_SCRIPT`: id, event ms, event JSON, reference, mode.
ARGS_PER_TXN: Final = 5
#: Leading arguments of :data:`APPLY_SCRIPT`: card window, retention, 3 terminal windows.
HEADER_ARGS: Final = 5
MODE_READ: Final = "r"
MODE_APPEND: Final = "a"
MODE_READ_APPEND: Final = "ra"

_LUA_COMMON = """
local function del_fields(key, ids)
  for i = 1, #ids, 1000 do
    redis.call('HDEL', key, unpack(ids, i, math.min(i + 999, #ids)))
  end
end
local function trim(zkey, hkey, floor, members_are_events)
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. floor)
  if #old > 0 then
    if members_are_events then
      for j = 1, #old do old[j] = cjson.decode(old[j])[1] end
    end
    del_fields(hkey, old)
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. floor)
  end
end
local function newest(zkey)
  local top = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  return tonumber(top[2])
end
"""

#: Read and/or append N transactions in order. KEYS: 6 per transaction (card ev, card t, card lbl,
#: terminal t, terminal f, terminal k); ARGV: card window ms, retention ms, terminal windows 7d/30d/90d
#: ms, then 5 per transaction (id, event ms, event JSON, "<ms>:<terminal_id>", mode r|a|ra). Returns
#: per transaction
#: {JSON array of the card's events in the read window, txn7, txn30, txn90, fraud7, fraud30, fraud90,
#: new (1 = appended now)}: one string for the events, so the client parses one value, not one each.
APPLY_SCRIPT: Final = (
    _LUA_COMMON
    + """
local card_window = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local tw = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])}
local ttl = retention
local out = {}
local n = (#ARGV - 5) / 5
for i = 0, n - 1 do
  local a = 5 + i * 5
  local txn, ms, ev, ref, mode = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local k = i * 6
  local ch, cz, cl, tz, tf, tk = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6]
  local reply = {'[]', 0, 0, 0, 0, 0, 0, 0}
  if mode ~= 'a' then
    local before = '(' .. ms
    local evs = redis.call('ZRANGEBYSCORE', cz, ms - card_window, before)
    if #evs > 0 then reply[1] = '[' .. table.concat(evs, ',') .. ']' end
    for w = 1, 3 do reply[1 + w] = redis.call('ZCOUNT', tz, ms - tw[w], before) end
    local f = redis.call('ZRANGEBYSCORE', tf, ms - tw[3], before, 'WITHSCORES')
    if #f > 0 then
      local fids = {}
      for j = 1, #f, 2 do fids[#fids + 1] = f[j] end
      local known = redis.call('HMGET', tk, unpack(fids))
      for j = 1, #fids do
        local kn = tonumber(known[j])
        local ems = tonumber(f[2 * j])
        if kn and kn < ms then
          for w = 1, 3 do
            if ems >= ms - tw[w] then reply[4 + w] = reply[4 + w] + 1 end
          end
        end
      end
    end
  end
  if mode ~= 'r' and redis.call('HSETNX', ch, txn, ref) == 1 then
    reply[8] = 1
    redis.call('ZADD', cz, ms, ev)
    redis.call('ZADD', tz, 'NX', ms, txn)
    local label = redis.call('HGET', cl, txn)
    if label then
      redis.call('ZADD', tf, ms, txn)
      redis.call('HSET', tk, txn, math.max(tonumber(label), ms))
      redis.call('HDEL', cl, txn)
      redis.call('PEXPIRE', tf, ttl)
      redis.call('PEXPIRE', tk, ttl)
    end
    trim(cz, ch, newest(cz) - retention, true)
    local term_floor = newest(tz) - retention
    redis.call('ZREMRANGEBYSCORE', tz, '-inf', '(' .. term_floor)
    trim(tf, tk, term_floor, false)
    redis.call('PEXPIRE', ch, ttl)
    redis.call('PEXPIRE', cz, ttl)
    redis.call('PEXPIRE', tz, ttl)
  end
  out[#out + 1] = reply
end
return out
"""
)

#: Labels of N transactions, card part. KEYS: 2 per label (card ev, card lbl); ARGV: retention ms,
#: then 2 per label (id, label ms). Returns per label the transaction's "<ms>:<terminal_id>", or
#: false when it is not known yet: the label then waits in ``lbl`` for the append that brings it.
LABEL_SCRIPT: Final = """
local ttl = tonumber(ARGV[1])
local out = {}
for i = 0, (#ARGV - 1) / 2 - 1 do
  local ch, cl = KEYS[i * 2 + 1], KEYS[i * 2 + 2]
  local txn, label = ARGV[2 + i * 2], ARGV[3 + i * 2]
  local ev = redis.call('HGET', ch, txn)
  if ev then
    out[#out + 1] = ev
  else
    local prev = tonumber(redis.call('HGET', cl, txn))
    if not prev or tonumber(label) < prev then redis.call('HSET', cl, txn, label) end
    redis.call('PEXPIRE', cl, ttl)
    out[#out + 1] = false
  end
end
return out
"""

#: Frauds of N transactions, terminal part. KEYS: 2 per fraud (terminal f, terminal k); ARGV:
#: retention ms, then 3 per fraud (id, event ms, known ms). The earliest arrival of a label wins.
FRAUD_SCRIPT: Final = """
local ttl = tonumber(ARGV[1])
for i = 0, (#ARGV - 1) / 3 - 1 do
  local tf, tk = KEYS[i * 2 + 1], KEYS[i * 2 + 2]
  local txn, ms, known = ARGV[2 + i * 3], ARGV[3 + i * 3], tonumber(ARGV[4 + i * 3])
  redis.call('ZADD', tf, ms, txn)
  local prev = tonumber(redis.call('HGET', tk, txn))
  if not prev or known < prev then redis.call('HSET', tk, txn, known) end
  redis.call('PEXPIRE', tf, ttl)
  redis.call('PEXPIRE', tk, ttl)
end
return #ARGV
"""


class OnlineLayout:
    """Key names of one namespace of the online state."""

    def __init__(self, namespace: str) -> None:
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"invalid feature namespace {namespace!r}")
        self.namespace = namespace

    def card(self, card_id: str) -> tuple[str, str, str]:
        """(events hash, time zset, waiting labels hash) of a card."""
        tag = f"{self.namespace}:{{c:{card_id}}}"
        return f"{tag}:ev", f"{tag}:t", f"{tag}:lbl"

    def terminal(self, terminal_id: str) -> tuple[str, str, str]:
        """(time zset, fraud zset, fraud known-time hash) of a terminal."""
        tag = f"{self.namespace}:{{t:{terminal_id}}}"
        return f"{tag}:t", f"{tag}:f", f"{tag}:k"

    def keys(self, card_id: str, terminal_id: str) -> tuple[str, ...]:
        """The :data:`KEYS_PER_TXN` keys of one transaction in :data:`APPLY_SCRIPT`."""
        return self.card(card_id) + self.terminal(terminal_id)

    def pattern(self) -> str:
        """SCAN pattern of every key of the namespace."""
        return f"{self.namespace}:*"
