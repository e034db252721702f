-- Records the visible state each user's audience was told, unless the
-- user is gone (a missing hash reads as offline, which is what was told).
-- One call marks many users (of one slot on Redis Cluster).
--
-- KEYS[i]  a user's hash
-- ARGV[i]  the visible state announced to that user's audience, as
--          apply.lua returned it

for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HSET', KEYS[i], 'a', ARGV[i])
  end
end
return 0
