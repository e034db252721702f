-- Moves checkpoints forward, but only from the values the caller last read
-- or wrote: a checkpoint that is not what the caller expects means Redis
-- lost state (a restart without persistence, a flush, a failover) or
-- another processor owns the partition, and the caller must stop. A
-- partition whose checkpoint reaches its rebuild target is rebuilt: the
-- target is removed.
--
-- KEYS[1]  the checkpoint hash
-- ARGV     triples: partition, expected offset, new offset
--
-- Returns "" when every checkpoint moved, else "<partition>=<found>" for the
-- first one that was not as expected (found is "" when missing); then
-- nothing is written.

local key = KEYS[1]
for i = 1, #ARGV, 3 do
  local found = redis.call('HGET', key, ARGV[i]) or ''
  if found ~= ARGV[i + 1] then
    return ARGV[i] .. '=' .. found
  end
end
for i = 1, #ARGV, 3 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 2])
  local target = redis.call('HGET', key, 'rebuild:' .. ARGV[i])
  if target and tonumber(ARGV[i + 2]) >= tonumber(target) then
    redis.call('HDEL', key, 'rebuild:' .. ARGV[i])
  end
end
return ''
