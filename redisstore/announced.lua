-- Records the visible state a user's audience was told, unless the user is
-- gone (a missing hash reads as offline, which is what was told).
--
-- KEYS[1]  the user's hash
-- ARGV[1]  the visible state announced, as apply.lua returned it

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'a', ARGV[1])
end
return 0
