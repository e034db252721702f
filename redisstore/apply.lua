-- Applies records of presence.sessions to users' hashes, each once and in
-- order, and compares each user's visible state with what was last
-- announced to the user's audience. One call applies many records (of one
-- user on Redis Cluster, where a call's keys must share a slot; of any
-- users on a single Redis), so that the cost of a call is paid once.
--
-- ARGV[1]  offline TTL, milliseconds
-- ARGV[2]  "1" during a rebuild: the visible state counts as announced
-- Then, for the i-th record, KEYS[i] is the user's hash and five ARGV:
--   version  the offset of the record in its partition
--   op       "c" connect, "d" disconnect, "s" set the custom status,
--            "x" clear it, "k" apply nothing, only compare
--   field    the session's field ("c", "d")
--   value    the session's value ("c"), the custom status ("s"); for a
--            disconnect, "<gateway>\31<epoch>" when it applies only to a
--            session held there (a gateway_lost disconnect), else ""
--   at       the record's time, Unix milliseconds
--
-- Hash fields: "v" version; "s<session>" one per live session; "c" the
-- custom status; "l" last seen, only while no session is live: the time of
-- the disconnect that ended the last one; "a" the visible state last
-- announced, or "=" when that is the visible state the hash showed before
-- its latest live change (a rebuild leaves "=", which costs no work to
-- keep up to date, and so does an announcement of the state the hash still
-- shows: one byte rather than the state). The visible state is the user's devices and custom
-- status; session ids, versions and times are not part of it, so a device
-- that reconnects is no news.
--
-- While no session is live, the hash expires the offline TTL after the
-- time of the latest record applied to it. Every rule depends only on the
-- latest record per key, which compaction keeps, so a replay of the
-- compacted topic rebuilds the same hash.
--
-- Returns, for each record in turn, four values {applied, announce,
-- visible, kept}, or during a rebuild only applied: applied is 1 when the record was newer than the hash (0
-- for a duplicate or a replayed record, which changes nothing); announce
-- is 0 when the visible state is what was announced, 1 when it must be
-- announced, 2 when the user went offline (announce it once the offline
-- grace period has passed, if still true); visible is "<version>:" and
-- the visible state, the version of the hash that shows it, for marking
-- it announced (announced.lua); kept is the session's
-- value when a conditional disconnect found it held by another gateway or
-- epoch and left it (it reconnected), else "".

local ttl = tonumber(ARGV[1])
local quiet = ARGV[2] == '1'
local offline = '\29'
local out = {}

-- The visible state of a hash (HGETALL's reply h) once the session field
-- holds value (nil: no session), with custom status c.
local function visible(h, field, value, c)
  local devices = {}
  local function add(v)
    local first = string.find(v, '\31', 1, true)
    devices[#devices + 1] = string.sub(v, 1, string.find(v, '\31', first + 1, true) - 1)
  end
  for i = 1, #h, 2 do
    if string.byte(h[i], 1) == 115 and h[i] ~= field then -- 's': a session
      add(h[i + 1])
    end
  end
  if value and string.byte(field, 1) == 115 then
    add(value)
  end
  table.sort(devices)
  return table.concat(devices, '\30') .. offline .. (c or '')
end

-- The gateway and epoch of a session's value:
-- device \31 device id \31 gateway \31 connected at [\31 epoch].
local function holder(v)
  local parts, from = {}, 1
  while true do
    local i = string.find(v, '\31', from, true)
    if not i then
      parts[#parts + 1] = string.sub(v, from)
      break
    end
    parts[#parts + 1] = string.sub(v, from, i - 1)
    from = i + 1
  end
  return (parts[3] or '') .. '\31' .. (parts[5] or '')
end

local function apply(key, version, op, field, value, at)
  -- The hash, read once: what follows works on its reply, deletes the
  -- fields the change removes and writes the others in one HSET.
  local h = redis.call('HGETALL', key)
  local v, a, l, c, held, sessions = '-1', nil, nil, nil, nil, 0
  for i = 1, #h, 2 do
    local f = h[i]
    if string.byte(f, 1) == 115 then
      sessions = sessions + 1
      if f == field then
        held = h[i + 1]
      end
    elseif f == 'v' then
      v = h[i + 1]
    elseif f == 'a' then
      a = h[i + 1]
    elseif f == 'l' then
      l = h[i + 1]
    elseif f == 'c' then
      c = h[i + 1]
    end
  end
  local announced = a or offline
  if announced == '=' and not quiet then
    announced = visible(h, nil, nil, c)
  end

  local kept = ''
  if op == 'd' and value ~= '' and held and holder(held) ~= value then
    kept = held
    op = 'k'
  end

  -- The session field's value after the change (nil: none).
  local now = held
  local before = sessions
  local applied = 0
  local set
  if op ~= 'k' and tonumber(version) > tonumber(v) then
    applied = 1
    if op == 'c' then
      if not held then
        sessions = sessions + 1
      end
      now = value
      set = {'v', version, field, value}
      if l then
        redis.call('HDEL', key, 'l')
        l = nil
      end
    elseif op == 'd' then
      set = {'v', version}
      if held then
        redis.call('HDEL', key, field)
        now = nil
        sessions = sessions - 1
      end
    elseif op == 's' then
      c = value
      set = {'v', version, 'c', value}
    elseif op == 'x' then
      set = {'v', version}
      if c then
        redis.call('HDEL', key, 'c')
        c = nil
      end
    end
  end

  local exists = #h > 0 or applied == 1
  if applied == 1 and sessions == 0 and op == 'x' and not l then
    -- Nothing left to show: the user never connected.
    redis.call('DEL', key)
    exists = false
  elseif exists then
    set = set or {}
    if applied == 1 and sessions == 0 and op == 'd' then
      set[#set + 1], set[#set + 2] = 'l', at
    end
    if quiet and a ~= '=' then
      set[#set + 1], set[#set + 2] = 'a', '='
    end
    if #set > 0 then
      redis.call('HSET', key, unpack(set))
    end
    if applied == 1 and sessions == 0 then
      -- A deadline already past deletes the key at once.
      redis.call('PEXPIREAT', key, tonumber(at) + ttl)
      exists = redis.call('EXISTS', key) == 1
    elseif applied == 1 and before == 0 and #h > 0 then
      redis.call('PERSIST', key)
    end
  end

  if quiet then
    return applied, 0, '', kept
  end
  local state = offline
  if exists then
    state = visible(h, field, now, c)
  end
  -- What announced.lua takes: the state, and the version that shows it.
  local told = v .. ':' .. state
  if applied == 1 then
    told = version .. ':' .. state
  end
  if state == announced then
    return applied, 0, told, kept
  end
  if exists and a == '=' then
    -- The announced state is about to change from the one the hash
    -- showed: keep it.
    redis.call('HSET', key, 'a', announced)
  end
  if sessions == 0 and string.byte(announced, 1) ~= 29 and op ~= 'k' then
    return applied, 2, told, kept
  end
  return applied, 1, told, kept
end

for i = 1, #KEYS do
  local at = 2 + 5 * (i - 1)
  local applied, announce, state, kept = apply(KEYS[i], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5])
  if quiet then
    out[i] = applied
  else
    out[#out + 1] = applied
    out[#out + 1] = announce
    out[#out + 1] = state
    out[#out + 1] = kept
  end
end
return out
