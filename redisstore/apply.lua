-- Applies one session record to a user's hash, once and in order.
--
-- KEYS[1]  the user's hash
-- ARGV[1]  version: the offset of the record in its partition
-- ARGV[2]  "c" for a connect, "d" for a disconnect
-- ARGV[3]  the session's field in the hash
-- ARGV[4]  the session's value (connects only)
-- ARGV[5]  the record's time, Unix milliseconds
-- ARGV[6]  offline TTL, milliseconds: a user with no session left is
--          deleted this long after its last disconnect
--
-- Hash fields: "v" version, "s<session>" one per live session, and, only
-- while no session is live, "l" last seen: the time of the disconnect that
-- ended the last session. Both rules depend only on a user's latest record
-- per session, which compaction keeps, so a replay of the compacted topic
-- rebuilds the same hash.
--
-- Returns 1 when applied, 0 when the record is not newer than the hash (a
-- duplicate or a replayed record), which changes nothing.

local key = KEYS[1]
local version = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', key, 'v') or '-1')
if version <= current then
  return 0
end
redis.call('HSET', key, 'v', ARGV[1])

if ARGV[2] == 'c' then
  redis.call('HSET', key, ARGV[3], ARGV[4])
  redis.call('HDEL', key, 'l')
  redis.call('PERSIST', key)
  return 1
end

redis.call('HDEL', key, ARGV[3])
local meta = 1 + redis.call('HEXISTS', key, 'l')
if redis.call('HLEN', key) > meta then
  return 1 -- other sessions are still live
end
-- The user is offline. The deadline counts from the record's time, so a
-- replay ends with the same keys as the live run; a deadline already past
-- deletes the key at once.
redis.call('HSET', key, 'l', ARGV[5])
redis.call('PEXPIREAT', key, tonumber(ARGV[5]) + tonumber(ARGV[6]))
return 1
