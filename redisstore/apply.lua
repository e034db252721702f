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
-- Hash fields: "v" version, "l" last seen (Unix ms), "s<session>" one per
-- live session. Returns 1 when applied, 0 when the record is not newer than
-- the hash (a duplicate or a replayed record), which changes nothing.

local key = KEYS[1]
local version = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', key, 'v') or '-1')
if version <= current then
  return 0
end
redis.call('HSET', key, 'v', ARGV[1])

if ARGV[2] == 'c' then
  redis.call('HSET', key, ARGV[3], ARGV[4])
  redis.call('PERSIST', key)
  return 1
end

redis.call('HDEL', key, ARGV[3])
local at = tonumber(ARGV[5])
local seen = tonumber(redis.call('HGET', key, 'l') or '0')
if at > seen then
  seen = at
  redis.call('HSET', key, 'l', ARGV[5])
end
if redis.call('HLEN', key) == 2 then
  -- only "v" and "l" are left: the user is offline. The deadline counts
  -- from the record's time, so a replay ends with the same keys as the
  -- live run; a deadline already past deletes the key at once.
  redis.call('PEXPIREAT', key, seen + tonumber(ARGV[6]))
end
return 1
