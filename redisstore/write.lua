#!lua flags=allow-cross-slot-keys
-- Writes users' hashes blindly, as their partition's owner holds them in
-- memory, but only while the caller still owns the partition: a processor
-- that lost it (paused past its session timeout, cut off from Kafka)
-- finds another owner's token in the fence and writes nothing. The users'
-- keys are not declared (ARGV, not KEYS), so that one call writes users
-- of many slots; on a Redis Cluster they must all be served by the node of
-- the fence (allow-cross-slot-keys lets a script reach keys of other
-- slots of its own node, and no other).
--
-- KEYS[1]  the fence of the partition on this node
-- ARGV[1]  the caller's token
-- Then, per user:
--   the key
--   "w" when the fields set are the whole hash (the key is deleted
--     first), else ""
--   n, then n strings: fields and values to set
--   m, then m fields to delete
--   the expiry: "" unchanged, else the Unix milliseconds at which the
--     key expires
--
-- Returns 1, or 0 (and writes nothing) when the fence holds another token.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local i = 2
while i <= #ARGV do
  local key, n = ARGV[i], tonumber(ARGV[i + 2])
  if ARGV[i + 1] == 'w' then
    redis.call('DEL', key)
  end
  if n > 0 then
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + n))
  end
  i = i + 3 + n
  local m = tonumber(ARGV[i])
  if m > 0 then
    redis.call('HDEL', key, unpack(ARGV, i + 1, i + m))
  end
  i = i + 1 + m
  local at = ARGV[i]
  if at ~= '' then
    redis.call('PEXPIREAT', key, at)
  end
  i = i + 1
end
return 1
