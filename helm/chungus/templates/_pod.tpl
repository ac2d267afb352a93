{{/*
Pod hooks every workload takes from its own values (gateway, triton, redis, postgresql):
include with (dict "v" .Values.gateway) and, for Triton, "affinity" (rendered YAML) to replace
v.affinity.
*/}}
{{- define "chungus.podScheduling" -}}
{{- with .v.runtimeClassName }}
runtimeClassName: {{ . | quote }}
{{- end }}
{{- with .v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := ternary .affinity (.v.affinity | toYaml) (hasKey . "affinity") }}
{{- if and $affinity (ne $affinity "{}") }}
affinity:
  {{- $affinity | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A pod template's metadata: selector labels plus podLabels; the given annotations plus
podAnnotations. Include with (dict "ctx" $ "component" "gateway" "v" .Values.gateway
"annotations" (dict ...)).
*/}}
{{- define "chungus.podMetadata" -}}
labels:
  {{- include "chungus.componentSelectorLabels" . | nindent 2 }}
  {{- with .v.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $annotations := merge (deepCopy (default (dict) .annotations)) (default (dict) .v.podAnnotations) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The pod spec fields shared by every workload: service account (no API token unless "sa" names a
launcher account), no service links, pull secrets. Include with (dict "ctx" $) or
(dict "ctx" $ "sa" "name").
*/}}
{{- define "chungus.podCommon" -}}
{{ if .sa -}}
serviceAccountName: {{ .sa }}
automountServiceAccountToken: true
{{- else -}}
serviceAccountName: {{ include "chungus.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automountServiceAccountToken }}
{{- end }}
# Service links would inject *_PORT variables (CHUNGUS_*_PORT collides with gateway settings).
enableServiceLinks: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A hardened container security context (the chart's own helper containers).
*/}}
{{- define "chungus.restrictedContainer" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}
