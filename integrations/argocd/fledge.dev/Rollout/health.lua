-- Argo CD health of a fledge Rollout, from the status the controller writes.
--   Healthy      the desired revision is stable and fully available
--   Progressing  moving to a new revision, or the controller has not seen the latest spec yet
--   Suspended    paused: a pause step, a manual promotion, or a user pause
--   Degraded     aborted, an invalid spec, or no progress within progressDeadlineSeconds
local hs = {}

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the fledge controller to observe the Rollout"
  return hs
end

-- A status computed from an older spec says nothing about the current one.
if obj.metadata.generation ~= nil and status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the fledge controller to observe the latest spec"
  return hs
end

local message = status.message or ""
local invalid = condition(status, "InvalidSpec")
if invalid ~= nil and invalid.status == "True" then
  hs.status = "Degraded"
  hs.message = invalid.message
  return hs
end
if status.abort == true then
  hs.status = "Degraded"
  hs.message = message
  return hs
end
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end

if status.phase == "Healthy" then
  hs.status = "Healthy"
elseif status.phase == "Paused" then
  hs.status = "Suspended"
elseif status.phase == "Degraded" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
