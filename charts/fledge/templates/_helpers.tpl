{{/* The chart name, shortened to fit a label value. */}}
{{- define "fledge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object the chart creates. */}}
{{- define "fledge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fledge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fledge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fledge
{{- end }}

{{- define "fledge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fledge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "fledge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fledge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace whose Rollouts the controller handles in namespaced mode. */}}
{{- define "fledge.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}

{{/* Name of the leader-election Lease, as the controller derives it from the instance id. */}}
{{- define "fledge.leaseName" -}}
{{- if .Values.instanceId }}
{{- printf "fledge-controller-%s" .Values.instanceId }}
{{- else }}
{{- print "fledge-controller" }}
{{- end }}
{{- end }}

{{- define "fledge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Values that would install a broken controller are refused at render time, with the reason:
schema rules cannot compare two values.
*/}}
{{- define "fledge.validate" -}}
{{- $c := .Values.controller }}
{{- $replicas := int $c.replicas }}
{{- if and (not $c.leaderElection.enabled) (gt $replicas 1) }}
{{- fail (printf "controller.leaderElection.enabled=false with controller.replicas=%d would run %d controllers writing the same objects at once: enable leader election or set controller.replicas=1" $replicas $replicas) }}
{{- end }}
{{- $le := $c.leaderElection }}
{{- if ge (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds) }}
{{- fail (printf "controller.leaderElection.renewDeadlineSeconds=%d is not below leaseDurationSeconds=%d: a leader cut off from the API server would still act when a standby takes over" (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds)) }}
{{- end }}
{{- if ge (int $le.retryPeriodSeconds) (int $le.renewDeadlineSeconds) }}
{{- fail (printf "controller.leaderElection.retryPeriodSeconds=%d is not below renewDeadlineSeconds=%d: a failed renewal would not be retried before the leader gives up" (int $le.retryPeriodSeconds) (int $le.renewDeadlineSeconds)) }}
{{- end }}
{{- if eq (int $c.metricsPort) (int $c.healthPort) }}
{{- fail (printf "controller.metricsPort and controller.healthPort are both %d: the second server cannot bind it; give them different ports" (int $c.metricsPort)) }}
{{- end }}
{{- if and .Values.rbac.analysis.secretNames (not .Values.rbac.analysis.secrets) }}
{{- fail "rbac.analysis.secretNames is set but rbac.analysis.secrets is false: set rbac.analysis.secrets=true to grant get on those Secrets" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (gt $replicas 1) }}
{{- $min := toString $pdb.minAvailable }}
{{- $blocks := false }}
{{- if hasSuffix "%" $min }}
{{- /* ceil(p% of replicas) >= replicas exactly when p * replicas > 100 * (replicas - 1) */}}
{{- $blocks = gt (mul (int (trimSuffix "%" $min)) $replicas) (mul 100 (sub $replicas 1)) }}
{{- else }}
{{- $blocks = ge (int $min) $replicas }}
{{- end }}
{{- if $blocks }}
{{- fail (printf "podDisruptionBudget.minAvailable=%s with controller.replicas=%d keeps every replica up, so no node running one could ever be drained: set it to %d or less" $min $replicas (sub $replicas 1)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The rules the controller needs on the Rollouts' namespace(s): every verb below is one the
controller issues today (see docs/install.md for where each one comes from).
*/}}
{{- define "fledge.controllerRules" -}}
# Rollouts: read from the watch cache only (no get); the controller writes their status, and
# patches only metadata.finalizers (a Rollout with a traffic router gets
# `fledge.dev/traffic-cleanup`, so that deleting it puts all traffic back on the stable first).
# RBAC cannot narrow patch to one field; the code never writes a Rollout's spec.
- apiGroups: [fledge.dev]
  resources: [rollouts]
  verbs: [list, watch, patch]
- apiGroups: [fledge.dev]
  resources: [rollouts/status]
  verbs: [patch]
# ReplicaSets and AnalysisRuns are owned by their Rollout with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only with update on finalizers.
- apiGroups: [fledge.dev]
  resources: [rollouts/finalizers]
  verbs: [update]
# Analysis: runs are created per analysis, terminated by a merge patch, old ones deleted; their
# status is written by a JSON patch (never a replace).
- apiGroups: [fledge.dev]
  resources: [analysisruns]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [fledge.dev]
  resources: [analysisruns/status]
  verbs: [patch]
- apiGroups: [fledge.dev]
  resources: [analysisruns/finalizers]
  verbs: [update]
- apiGroups: [fledge.dev]
  resources: [analysistemplates]
  verbs: [list, watch]
# Notifications: the channel is read (by name) when a message goes out; delivery is recorded in
# the Rollout's status.
- apiGroups: [fledge.dev]
  resources: [notificationchannels]
  verbs: [get]
# One ReplicaSet per revision, written by server-side apply, deleted past revisionHistoryLimit.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, watch, create, patch, delete]
# Selectors of the stable/canary/active/preview Services are pinned by server-side apply; the
# Services themselves are read from the watch cache.
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, patch]
# With a traffic router: the EndpointSlices of those Services, read from a watch cache. Gateways
# and meshes route by them, so a revision gets traffic only once its pods are listed ready there,
# not merely counted available by their ReplicaSet.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
# `kubectl fledge restart` (spec.restartAt): the stable revision's pods are read from the watch
# cache and evicted one at a time within maxUnavailable. Role metadata (canaryMetadata,
# stableMetadata, ...) is patched onto a revision's pods in place when its role changes.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, patch]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
# workloadRef: the referenced Deployment's template is read from the watch cache; it is scaled
# to 0 on success.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, patch]
# Every decision is recorded as an Event (events.k8s.io/v1; a repeat patches the series).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if .Values.rbac.analysis.jobs }}
# The `job` analysis provider runs a Job per measurement and deletes it when done.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
{{- end }}
{{- if .Values.rbac.analysis.secrets }}
# Secrets named by analyses (args' valueFrom.secretKeyRef, header valueFrom, Prometheus
# bearerTokenSecret), read in the run's namespace: single Secrets by name, never a list; only
# those of rbac.analysis.secretNames when it is set.
- apiGroups: [""]
  resources: [secrets]
  {{- with .Values.rbac.analysis.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: [get]
{{- end }}
{{- if .Values.rbac.notifications.secrets }}
# The Secrets notification channels name (address, token, routing key), read by name when a
# message goes out; only those of rbac.notifications.secretNames when it is set.
- apiGroups: [""]
  resources: [secrets]
  {{- with .Values.rbac.notifications.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: [get]
{{- end }}
{{- with .Values.rbac.trafficRouting }}
{{- if .gatewayAPI }}
# Gateway API: only the weights of the backendRefs fledge manages are patched.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes, grpcroutes]
  verbs: [list, watch, patch]
# The routes' parent Gateways and their GatewayClasses, read only: a class's
# status.supportedFeatures says which filters its gateway implements (a mirror fledge would write
# must be among them).
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, gatewayclasses]
  verbs: [get, list, watch]
{{- end }}
{{- if .istio }}
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [list, watch, patch]
{{- end }}
{{- if .smi }}
# SMI: fledge creates the TrafficSplit of a Rollout, sets its weights, deletes it on cleanup.
- apiGroups: [split.smi-spec.io]
  resources: [trafficsplits]
  verbs: [list, watch, create, patch, delete]
{{- end }}
{{- if .nginx }}
# NGINX: a canary Ingress is created beside the stable one and removed after the rollout.
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [list, watch, create, patch, delete]
{{- end }}
{{- end }}
{{- end }}

{{/*
Prefix of cluster-scoped objects. A namespaced installation adds its namespace, so that one
installation per namespace never collides with another.
*/}}
{{- define "fledge.clusterPrefix" -}}
{{- if eq .Values.scope "namespaced" }}
{{- printf "%s-%s" (include "fledge.fullname" .) .Release.Namespace }}
{{- else }}
{{- include "fledge.fullname" . }}
{{- end }}
{{- end }}
