-- Argo CD health check of a ModelDeployment (overseer.dev/v1alpha1), from its status conditions:
-- Degraded=True -> Degraded (invalid config, pods failing, a rollout that cannot finish);
-- Ready=True for the current generation -> Healthy; anything else -> Progressing (pods starting,
-- a hot swap or rolling update under way, the operator not caught up yet).
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the schema-overseer operator to report a status"
  return hs
end
-- Degraded for the current generation is shown even while the status reflects an older one
-- (an internal error of the operator on a new spec: its Ready is the older generation's).
for _, condition in ipairs(status.conditions) do
  if condition.type == "Degraded" and condition.status == "True" and condition.observedGeneration ~= nil
      and condition.observedGeneration == obj.metadata.generation then
    hs.status = "Degraded"
    hs.message = (condition.reason or "") .. ((condition.message ~= nil and condition.message ~= "") and (": " .. condition.message) or "")
    return hs
  end
end
if obj.metadata.generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions) do
  conditions[condition.type] = condition
end
local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end
local degraded, ready, progressing = conditions["Degraded"], conditions["Ready"], conditions["Progressing"]
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing)
else
  hs.status = "Progressing"
  hs.message = ready ~= nil and describe(ready) or "Waiting for the Ready condition"
end
return hs
