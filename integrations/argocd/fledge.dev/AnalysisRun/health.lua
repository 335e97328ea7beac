-- Argo CD health of a fledge AnalysisRun, from its phase.
local hs = {}
local phase = nil
local message = ""
if obj.status ~= nil then
  phase = obj.status.phase
  message = obj.status.message or ""
end

if phase == "Successful" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Error" then
  hs.status = "Degraded"
elseif phase == "Inconclusive" then
  -- The Rollout waits for a person to promote or abort.
  hs.status = "Suspended"
elseif phase == "Terminated" then
  -- Stopped when no longer needed (its rollout promoted, aborted or replaced): no verdict,
  -- and nothing wrong. A rollout that still needed it pauses, and says so itself.
  hs.status = "Healthy"
else
  -- Pending, Running, or not yet picked up by the controller.
  hs.status = "Progressing"
end
if message == "" and phase ~= nil then
  message = "AnalysisRun is " .. phase
end
hs.message = message
return hs
