"""
What a cluster keeps in Redis: the names of its keys and channels (all
under C{--engine-prefix}), and the Lua scripts that change them, each in one
atomic step.  Plain data; L{soukets.engines.redis} runs them.

The keys, for prefix C{P}:

  - C{P:nodes}: sorted set, node id -> its last beat (ms of Redis' clock);
  - C{P:node-clients}: hash, node id -> its number of clients;
  - C{P:queue}: sorted set, C{NODE|ROUTE} -> arrival number (from
    C{P:queue-arrivals}), with C{P:queue-entries}: hash, entry -> JSON
    C{[client id, name]};
  - C{P:games}: hash, lobby id -> JSON listing of the game (for C{games});
  - C{P:m:CHANNEL}: hash, C{NODE|ROUTE} -> JSON C{[client id, name]}, the
    channel's members on every node, with C{P:node-channels:NODE}: set of
    the channels a node has members on (for its purge);
  - channels C{P:c:CHANNEL} (a channel's messages) and C{P:n:NODE} (a
    node's inbox).

These are scripts on keys they compute from their arguments: a plain Redis
(or one reached through a proxy), not Redis Cluster.
"""

from __future__ import annotations

import attrs

from soukets.engines import DEFAULT_PREFIX

# Lua scripts.  Node entries live in the sorted set KEYS nodes (score: the
# last beat, in ms of Redis' clock); queue entries are "NODE|ROUTE" in a
# sorted set scored by arrival, with the client's id and name beside them.

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

RESERVE = _NOW + """
return redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1])
"""

BEAT_SCRIPT = _NOW + """
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[3]), '+inf')
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
return {added, live, stale}
"""

STATS_SCRIPT = _NOW + """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[3]), '+inf')
local clients = 0
for _, node in ipairs(live) do
  clients = clients + tonumber(redis.call('HGET', KEYS[2], node) or '0')
end
return {#live, clients, redis.call('ZCARD', KEYS[3])}
"""

# KEYS: queue, arrivals counter, entry info, nodes
# ARGV: lobby size, freshness in ms, mode, then an entry and its info for
# each arrival (a node sends one turn's arrivals at once).
# Returns how many wait after each arrival, and the entries taken (entry,
# score, info, ...): mode 'full' takes every group of fresh entries it can;
# mode 'any' takes up to one group (bots fill the rest).
QUEUE_SCRIPT = _NOW + """
local size = tonumber(ARGV[1])
local waitings = {}
for i = 4, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[i])
  end
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  table.insert(waitings, redis.call('ZCARD', KEYS[1]))
end
local taken = {}
while true do
  local group = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, size + 199)) do
    local node = string.sub(member, 1, string.find(member, '|', 1, true) - 1)
    local beat = redis.call('ZSCORE', KEYS[4], node)
    if beat and tonumber(beat) >= now - tonumber(ARGV[2]) then
      table.insert(group, member)
      if #group == size then break end
    end
  end
  if #group < size and (ARGV[3] == 'full' or #group == 0) then
    break
  end
  for _, member in ipairs(group) do
    table.insert(taken, member)
    table.insert(taken, redis.call('ZSCORE', KEYS[1], member))
    table.insert(taken, redis.call('HGET', KEYS[3], member) or '[]')
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[3], member)
  end
  if ARGV[3] == 'any' then
    break
  end
end
return {waitings, taken}
"""

# Put back entries taken by QUEUE_SCRIPT (ARGV: member, score, info, ...),
# at their old places.
RESTORE_SCRIPT = """
for i = 1, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
end
return #ARGV / 3
"""

REMOVE_SCRIPT = """
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

RENAME_SCRIPT = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 0
"""

# Channel members of every node: a hash per channel ("NODE|ROUTE" -> [id,
# name]) and, per node, the set of channels it has members on.
JOIN_SCRIPT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 0
"""

# KEYS: nodes, node info, queue, entry info, games, the node's channels.
# ARGV: node, the prefix of channel member hashes.
PURGE_SCRIPT = """
local node = ARGV[1]
local gone = redis.call('ZREM', KEYS[1], node)
redis.call('HDEL', KEYS[2], node)
local mine = node .. '|'
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if string.sub(member, 1, #mine) == mine then
    redis.call('ZREM', KEYS[3], member)
    redis.call('HDEL', KEYS[4], member)
  end
end
local games = 'lobby:' .. node .. '.'
for _, lobby in ipairs(redis.call('HKEYS', KEYS[5])) do
  if string.sub(lobby, 1, #games) == games then
    redis.call('HDEL', KEYS[5], lobby)
  end
end
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  local key = ARGV[2] .. channel
  for _, member in ipairs(redis.call('HKEYS', key)) do
    if string.sub(member, 1, #mine) == mine then
      redis.call('HDEL', key, member)
    end
  end
end
redis.call('DEL', KEYS[6])
return gone
"""


@attrs.frozen
class Keys:
    """
    The names of everything a cluster keeps in Redis, under its prefix.
    """

    prefix: str = DEFAULT_PREFIX

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def node_info(self) -> str:
        return f"{self.prefix}:node-clients"

    @property
    def queue(self) -> str:
        return f"{self.prefix}:queue"

    @property
    def arrivals(self) -> str:
        return f"{self.prefix}:queue-arrivals"

    @property
    def entries(self) -> str:
        return f"{self.prefix}:queue-entries"

    @property
    def games(self) -> str:
        return f"{self.prefix}:games"

    def channel(self, name: str) -> str:
        return f"{self.prefix}:c:{name}"

    def members(self, name: str) -> str:
        return f"{self.prefix}:m:{name}"

    def node_channels(self, node: str) -> str:
        return f"{self.prefix}:node-channels:{node}"

    def inbox(self, node: str) -> str:
        return f"{self.prefix}:n:{node}"
