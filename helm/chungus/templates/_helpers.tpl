{{/* Standard names. */}}
{{- define "chungus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chungus.fullname" -}}
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

{{- define "chungus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; helm.sh/chart is never used in selectors. */}}
{{- define "chungus.labels" -}}
helm.sh/chart: {{ include "chungus.chart" . }}
{{ include "chungus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "chungus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chungus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chungus.secretName" -}}
{{- default (printf "%s-admin" (include "chungus.fullname" .)) .Values.gateway.existingSecret }}
{{- end }}

{{- define "chungus.redisUrl" -}}
{{- if .Values.redis.enabled }}redis://{{ include "chungus.fullname" . }}-redis:6379/0{{ else }}{{ .Values.redis.url }}{{ end }}
{{- end }}

{{/* Hardened defaults for every container. */}}
{{- define "chungus.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* One gRPC endpoint per Triton pod (stable StatefulSet names through the headless Service). */}}
{{- define "chungus.tritonUrls" -}}
{{- $full := include "chungus.fullname" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.triton.replicas) -}}
{{- $urls = append $urls (printf "%s-triton-%d.%s-triton-headless:%d" $full $i $full (int $.Values.triton.ports.grpc)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end }}
