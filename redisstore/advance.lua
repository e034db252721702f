-- Moves checkpoints forward, but only from the values the caller last read
-- or wrote: a checkpoint that is not what the caller expects means Redis
-- lost state (a restart without persistence, a flush, a failover) or
-- another processor owns the partition, and the caller must stop. A
-- partition whose checkpoint reaches its rebuild target is rebuilt: the
-- target is removed.
--
-- A partition taken with redisstore.Store.Own moves only for the owner
-- that took it last: a processor that lost the partition while paused
-- finds another's token in the owner field, and moves nothing.
--
-- KEYS[1]  the checkpoint hash
-- ARGV     quintuples: partition, expected offset, new offset, the
--          caller's owner token ("" when the caller did not take the
--          partition with Own), the offset from which offline
--          announcements may be pending ("" when none is: the field
--          goes; see redisstore.Checkpoint.Told)
--
-- Returns "" when every checkpoint moved, else "<partition>=<found>" for the
-- first one that was not as expected (found is "" when missing, "owner"
-- when another owner took the partition); then nothing is written.

local key = KEYS[1]
for i = 1, #ARGV, 5 do
  if ARGV[i + 3] ~= '' and redis.call('HGET', key, 'owner:' .. ARGV[i]) ~= ARGV[i + 3] then
    return ARGV[i] .. '=owner'
  end
  local found = redis.call('HGET', key, ARGV[i]) or ''
  if found ~= ARGV[i + 1] then
    return ARGV[i] .. '=' .. found
  end
end
for i = 1, #ARGV, 5 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 2])
  if ARGV[i + 4] ~= '' then
    redis.call('HSET', key, 'owner:told:' .. ARGV[i], ARGV[i + 4])
  else
    redis.call('HDEL', key, 'owner:told:' .. ARGV[i])
  end
  local target = redis.call('HGET', key, 'rebuild:' .. ARGV[i])
  if target and tonumber(ARGV[i + 2]) >= tonumber(target) then
    redis.call('HDEL', key, 'rebuild:' .. ARGV[i])
  end
end
return ''
